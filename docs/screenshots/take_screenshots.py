"""Retake docs/screenshots/*.png: the real desktop app on a private Xvfb, against the demo estate.

What it does, as a person would: starts Xvfb with a tray (trayer), launches ``cloudops app`` with a
CLOUDOPS_HOME holding the synced demo estate (made once with ``cloudops demo``: moto, three accounts),
left-clicks the tray icon (its default item, Quick ask), types a request and presses Enter, then Tabs to
"Open approval view" (the approval window), and finally opens the main window from the tray menu.
Each window is captured on its own with ImageMagick's ``import -window``; the whole screen with the
tray menu open too. Needs the packages in packaging/system-deps.sh.

Run: python docs/screenshots/take_screenshots.py [--prompt "Stop pg-instance-main1"]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def xdo(env: dict, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=30).stdout.strip()


def wait_window(env: dict, pattern: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = xdo(env, "search", "--onlyvisible", "--name", pattern)
        if found:
            return found.split()[0]
        time.sleep(0.3)
    raise SystemExit(f"no window named {pattern!r}")


def centre(env: dict, window: str) -> tuple[int, int]:
    geometry = dict(line.split("=", 1) for line in xdo(env, "getwindowgeometry", "--shell", window).splitlines())
    return int(geometry["X"]) + int(geometry["WIDTH"]) // 2, int(geometry["Y"]) + int(geometry["HEIGHT"]) // 2


def click(env: dict, x: int, y: int, button: str = "1") -> None:
    xdo(env, "mousemove", str(x), str(y))
    time.sleep(0.2)
    xdo(env, "click", button)


def shoot(env: dict, window: str, name: str) -> None:
    subprocess.run(["import", "-window", window, str(OUT / name)], env=env, check=True, timeout=60)
    print(f"wrote {OUT / name}")


def demo_home() -> Path:
    home = Path(tempfile.gettempdir()) / "cloudops-bench-desktop-home"  # shared with bench/bench_desktop.py
    if not (home / "index").exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "app.interfaces.cli", "demo"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    return home


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompt", default="Stop pg-instance-main1")
    args = parser.parse_args()
    from bench.bench_desktop import start_display, tree

    home = demo_home()
    env, helpers = start_display()
    env = {**env, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    app = subprocess.Popen(["dbus-run-session", "--", sys.executable, "-m", "app.interfaces.cli", "app"], env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (home / "endpoint.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        icon = wait_window(env, "^CloudOps · ")
        time.sleep(3)  # the hidden Quick ask window loads its page

        # Quick ask: the tray icon's left click (default item), type, Enter.
        click(env, *centre(env, icon))
        quick = wait_window(env, "^CloudOps · Quick ask$")
        time.sleep(2)
        x, y = centre(env, quick)
        click(env, x, y - 180)  # into the prompt field near the top of the window
        xdo(env, "type", "--delay", "30", args.prompt)
        time.sleep(1.0)
        xdo(env, "key", "Escape", "Return")  # close the suggestions, plan what is typed
        info = json.loads((home / "endpoint.json").read_text())
        import httpx

        deadline = time.monotonic() + 180  # the first plan loads the embedding model and the agent stack
        while time.monotonic() < deadline:
            events = httpx.get(info["url"] + "/v1/audit?limit=5", headers={"Authorization": f"Bearer {info['token']}"},
                               timeout=10).json()
            if any(e.get("prompt") == args.prompt for e in events):
                break
            time.sleep(1)
        time.sleep(3)
        shoot(env, quick, "quick-ask.png")

        # The approval window: the "Open approval view" button (where the Quick ask layout puts it).
        geometry = dict(line.split("=", 1) for line in xdo(env, "getwindowgeometry", "--shell", quick).splitlines())
        click(env, int(geometry["X"]) + 380, int(geometry["Y"]) + 218)
        approval = wait_window(env, "^CloudOps · Approve plan$")
        time.sleep(5)
        shoot(env, approval, "approval-actions.png")  # it opens scrolled to its Approve / Deny buttons
        x, y = centre(env, approval)
        xdo(env, "mousemove", str(x), str(y))  # the wheel scrolls the window under the pointer
        xdo(env, "click", "--repeat", "20", "--delay", "50", "4")  # wheel up to the top
        time.sleep(1)
        shoot(env, approval, "approval.png")

        # The main window (explorer) from the tray menu: right click, second item.
        click(env, *centre(env, icon), button="3")
        time.sleep(1)
        subprocess.run(["import", "-window", "root", str(OUT / "tray-menu.png")], env=env, check=True, timeout=60)
        print(f"wrote {OUT / 'tray-menu.png'}")
        xdo(env, "key", "Down", "Down", "Return")
        main_window = wait_window(env, "^CloudOps$")
        time.sleep(5)
        shoot(env, main_window, "explorer.png")
    finally:
        # SIGTERM to the app itself (its graceful Quit); dbus-run-session then ends its bus and exits.
        # Signalling dbus-run-session instead would leave its dbus-daemon behind.
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


if __name__ == "__main__":
    main()
