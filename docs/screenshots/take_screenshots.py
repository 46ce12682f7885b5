"""Retake docs/screenshots/*.png: the real desktop app on a private Xvfb, against the demo estate in moto.

What it does, as a person would (keyboard and mouse through xdotool, no page scripting): starts Xvfb with a
tray (trayer), moto with the demo estate (three accounts) and ``cloudops app`` on it, syncs, then

* quick-ask.png: left-clicks the tray icon (Quick ask), types a production request, Enter;
* approval-critical.png / approval-confirm.png: plans a critical production request, Tabs to "Open
  approval view"; the approval window as it opens (banner, risk, commands at the top), then Tab to the name
  box and type the name (the button that names the action enables);
* tray-menu.png: the tray menu (right click);
* explorer.png: "Open CloudOps" (the main window), a search;
* read-result.png: in the main window, Alt+1 (Quick ask), a describe run with Ctrl+Enter (read-only), Home.

Each window is captured on its own with ImageMagick's ``import -window``; the tray menu as the whole screen.
Needs the packages in packaging/system-deps.sh. Prompts are ones no test uses.

Run: python docs/screenshots/take_screenshots.py
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

QUICK_PROMPT = "reboot the billing database with a failover"
CRITICAL_PROMPT = "purge the orders-queue in production"
CRITICAL_NAME = "orders-queue"
READ_PROMPT = "describe pg-instance-main1"
SEARCH = "orders"


def xdo(env: dict, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=30).stdout.strip()


def keys(env: dict, *names: str) -> None:
    for name in names:
        xdo(env, "key", name)
        time.sleep(0.15)


def wait_window(env: dict, pattern: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = xdo(env, "search", "--onlyvisible", "--name", pattern)
        if found:
            return found.split()[0]
        time.sleep(0.3)
    raise SystemExit(f"no window named {pattern!r}")


def box(env: dict, window: str) -> tuple[int, int, int, int]:
    geometry = dict(line.split("=", 1) for line in xdo(env, "getwindowgeometry", "--shell", window).splitlines())
    return int(geometry["X"]), int(geometry["Y"]), int(geometry["WIDTH"]), int(geometry["HEIGHT"])


def click(env: dict, x: int, y: int, button: str = "1") -> None:
    xdo(env, "mousemove", str(x), str(y))
    time.sleep(0.2)
    xdo(env, "click", button)
    time.sleep(0.3)


def close_like_a_window_manager(env: dict, window: str) -> None:
    """WM_DELETE_WINDOW, what a window manager sends for the close button: the app hides the window."""
    from Xlib import X, display, protocol

    screen = display.Display(env["DISPLAY"])
    try:
        target = screen.create_resource_object("window", int(window))
        event = protocol.event.ClientMessage(window=target, client_type=screen.intern_atom("WM_PROTOCOLS"),
                                             data=(32, [screen.intern_atom("WM_DELETE_WINDOW"), X.CurrentTime, 0, 0, 0]))
        target.send_event(event, event_mask=X.NoEventMask)
        screen.flush()
    finally:
        screen.close()
    time.sleep(1)


def shoot(env: dict, window: str, name: str) -> None:
    subprocess.run(["import", "-window", window, str(OUT / name)], env=env, check=True, timeout=60)
    print(f"wrote {OUT / name}")


class Endpoint:
    """The running app's endpoint, to know when a plan or a run has happened (never to drive the UI)."""

    def __init__(self, home: Path):
        info = json.loads((home / "endpoint.json").read_text())
        self.url, self.headers = info["url"], {"Authorization": f"Bearer {info['token']}"}

    def events(self) -> list[dict]:
        import httpx

        return httpx.get(self.url + "/v1/audit?limit=200", headers=self.headers, timeout=10).json()

    def wait(self, what, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((e for e in self.events() if what(e)), None)
            if found:
                return found
            time.sleep(0.5)
        raise SystemExit("the app did not get there in time")

    def planned(self, prompt: str) -> dict:
        return self.wait(lambda e: e["kind"] == "plan" and e["prompt"] == prompt)


def main() -> None:
    import httpx

    from app.config import save_config
    from app.demo.demo_estate import demo_config, simulated_estate
    from bench.bench_desktop import start_display, tree

    home = Path(tempfile.mkdtemp(prefix="cloudops-shots-"))
    display, helpers = start_display()
    with simulated_estate():
        save_config(demo_config(), home / "config.yaml")
        env = {**os.environ, "DISPLAY": display["DISPLAY"], "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1",
               "CLOUDOPS_SCHEDULE_DELAY_S": "3600", "NO_PROXY": "127.0.0.1,localhost"}
        app = subprocess.Popen(["dbus-run-session", "--", sys.executable, "-m", "app.interfaces.cli", "app"], env=env,
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 90
            while not (home / "endpoint.json").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            endpoint = Endpoint(home)
            report = httpx.post(endpoint.url + "/v1/sync", json={}, headers=endpoint.headers, timeout=600).json()
            print(f"synced: {report['added']} resources, {len(report['errors'])} errors")
            icon = wait_window(env, "^CloudOps · ")
            ix, iy, iw, ih = box(env, icon)
            tray_icon = (ix + iw // 2, iy + ih // 2)

            # Quick ask: the tray icon's left click, type, Enter.
            click(env, *tray_icon)
            quick = wait_window(env, "^CloudOps · Quick ask$")
            time.sleep(4)
            qx, qy, _, _ = box(env, quick)
            click(env, qx + 200, qy + 85)  # the prompt's label
            xdo(env, "type", "--delay", "30", QUICK_PROMPT)
            keys(env, "Escape", "Return")
            endpoint.planned(QUICK_PROMPT)
            time.sleep(3)
            shoot(env, quick, "quick-ask.png")

            # A critical plan, then its approval window (Tab: Plan, the explanation, the command, Copy, the
            # name box, "Open approval view"; the action button is disabled until the name is typed).
            click(env, qx + 200, qy + 85)
            keys(env, "ctrl+a")
            xdo(env, "type", "--delay", "30", CRITICAL_PROMPT)
            keys(env, "Escape", "Return")
            endpoint.planned(CRITICAL_PROMPT)
            time.sleep(3)
            keys(env, *["Tab"] * 6, "Return")
            approval = wait_window(env, "^CloudOps · Approve plan$")
            time.sleep(5)
            shoot(env, approval, "approval-critical.png")
            keys(env, *["Tab"] * 4)  # from the heading: the explanation, the command, Copy, the name box
            xdo(env, "type", "--delay", "40", CRITICAL_NAME)
            time.sleep(1)
            shoot(env, approval, "approval-confirm.png")
            close_like_a_window_manager(env, approval)  # closing only hides it (Xvfb has no window manager)

            # The tray menu, then the main window (its second item) with a search.
            click(env, *tray_icon, button="3")
            time.sleep(1)
            subprocess.run(["import", "-window", "root", str(OUT / "tray-menu.png")], env=env, check=True, timeout=60)
            print(f"wrote {OUT / 'tray-menu.png'}")
            keys(env, "Down", "Down", "Return")
            main_window = wait_window(env, "^CloudOps$")
            time.sleep(5)
            mx, my, _, _ = box(env, main_window)
            xdo(env, "windowraise", main_window)
            click(env, mx + 600, my + 133)  # the search box (no window manager: a click gives the focus)
            xdo(env, "type", "--delay", "30", SEARCH)
            keys(env, "Return")
            time.sleep(3)
            shoot(env, main_window, "explorer.png")

            # A read result in the main window: Alt+1 is Quick ask there.
            keys(env, "alt+1")
            time.sleep(2)
            xdo(env, "type", "--delay", "30", READ_PROMPT)
            keys(env, "Escape", "Return")
            planned = endpoint.planned(READ_PROMPT)
            time.sleep(2)
            keys(env, "ctrl+Return")
            endpoint.wait(lambda e: e["kind"] == "step" and e["request_id"] == planned["request_id"])
            time.sleep(3)
            keys(env, "Home")  # the run's outcome has the focus at the bottom: back to the top of the plan
            time.sleep(1)
            shoot(env, main_window, "read-result.png")
        finally:
            # SIGTERM to the app itself (its graceful Quit); dbus-run-session then ends its bus and exits.
            for pid in tree(app.pid)[1:]:
                try:
                    if b"app.interfaces.cli" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
            app.wait(timeout=60)
            for helper in helpers:
                helper.terminate()
                helper.wait(timeout=10)
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
