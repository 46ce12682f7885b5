"""The desktop app (tray + windows + endpoint) as a person uses it, on a real X display.

The end-to-end test starts its own Xvfb on a free display number, docks a tray into it with
``trayer``, launches the real ``cloudops app`` process under ``dbus-run-session`` (pystray's GTK
backend), and drives the real tray with xdotool: a right click on the docked icon opens the menu,
the keyboard picks "Open CloudOps", later "Quit". No pystray API is called from the test.

The page it loads is a probe (``CLOUDOPS_UI_DIR``), served by the real endpoint under the UI's strict
Content-Security-Policy: it asks ``window.pywebview.api.get_token()`` for the token and then plans a
prompt naming its route, so the audit trail proves that the token went from the bridge to the page
to the endpoint without ever being in a URL.

It runs once per Linux web engine: the system's WebKitGTK (pywebview's GTK backend, the default and
what the bundle uses) and Qt WebEngine (the self-contained opt-in), and checks that the engine asked for
is the one whose processes run.

Skipped, naming the Debian packages, where Xvfb, the tray tools, WebKitGTK or the Qt libraries are
missing (``packaging/system-deps.sh`` installs them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "app.interfaces.cli"]
# CLOUDOPS_TEST_BUNDLE=dist/cloudops runs the real-display test against a PyInstaller bundle instead of
# the source tree (the engine the bundle was not built with is skipped).
BUNDLE = Path(os.environ["CLOUDOPS_TEST_BUNDLE"]).resolve() if os.environ.get("CLOUDOPS_TEST_BUNDLE") else None
APT = ("xvfb xdotool imagemagick trayer dbus-x11 libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 "
       "libxkbcommon-x11-0 libnss3 libasound2 gir1.2-gtk-3.0 gir1.2-webkit2-4.1")
PIP = "pywebview[qt] pystray Pillow PyGObject<3.51"


# ---- fast checks, no display -----------------------------------------------------------------

def test_status_line_reads_last_sync_and_errors():
    from datetime import datetime, timedelta, timezone

    from app.desktop.tray import StatusLine, status_from

    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    failed_at = (now - timedelta(minutes=1)).isoformat()
    body = {"documents": 93, "scopes": [  # per scope, never the newest alone (tests/test_tray_status.py has more)
        {"account_name": "prod", "region": "us-east-1", "last_success": (now - timedelta(minutes=5)).replace(tzinfo=None).isoformat(),
         "last_error": None},
        {"account_name": "prod", "region": "us-west-2", "last_success": (now - timedelta(hours=2)).isoformat(),
         "last_error": "AccessDenied: no", "last_error_at": failed_at},
        {"account_name": "dev", "region": "us-west-2", "last_success": None, "last_error": "ReadTimeout", "last_error_at": failed_at}]}
    line = status_from(body)
    assert (line.documents, line.errors) == (93, 2)
    assert line.text(now) == "93 resources · synced 1 of 3 scopes 5 min ago; 2 failed (oldest data 2 h; 1 scope never synced)"
    assert line.errors_text() == "Failing: dev in us-west-2 (AWS not reachable); prod in us-west-2 (access denied)"
    assert status_from({"documents": 0, "scopes": []}).text(now) == "0 resources · never synced"
    assert StatusLine(unreachable=True).text() == "Endpoint not answering"


def test_sync_now_runs_in_the_background_and_refreshes_the_status_line():
    """The tray's Sync now: never on the GTK thread, one at a time, the status line re-read after it."""
    from app.desktop.tray import Tray

    release, calls = threading.Event(), []

    class Client:
        def status(self) -> dict:
            calls.append("status")
            return {"documents": 94, "scopes": [{"last_success": "2026-01-01T00:00:00", "last_error": "throttled",
                                                 "last_error_at": "2026-01-01T00:05:00"}]}

        def sync(self) -> dict:
            calls.append("sync")
            release.wait(10)
            return {"scopes": []}

    tray = Tray(actions=None, client=Client())  # no icon: the menu logic alone
    tray._sync_now()
    assert tray.status.syncing and tray.status.text() == "Syncing…"
    tray._sync_now()  # a second click while syncing starts nothing
    release.set()
    deadline = time.monotonic() + 10
    while tray.status.syncing and time.monotonic() < deadline:
        time.sleep(0.02)
    assert calls == ["sync", "status"]
    assert (tray.status.documents, tray.status.errors, tray.status.syncing) == (94, 1, False)


def test_bridge_exposes_the_token_and_nothing_private():
    from app.desktop.shell import Bridge

    opened: list[str] = []
    bridge = Bridge("tok-123", lambda route: opened.append(route) or True)
    public = sorted(n for n in dir(bridge) if not n.startswith("_"))
    assert public == ["get_token", "open_window"]  # what pywebview exposes to the page
    assert bridge.get_token() == "tok-123"
    assert bridge.open_window("plan/abc") and opened == ["plan/abc"]


def test_routes_only_open_known_windows():
    from app.desktop.shell import NAMED_ROUTES, PLAN_ROUTE

    assert {"ask", "explorer", "audit", "settings"} == NAMED_ROUTES
    assert PLAN_ROUTE.match("plan/3f2a-11") and not PLAN_ROUTE.match("plan/../x") and not PLAN_ROUTE.match("http://x")


def test_the_approval_window_is_an_ordinary_window():
    """Not always on top: an on-top approval window covered Quick ask and took what was typed into it."""
    from app.desktop.shell import WINDOWS

    assert WINDOWS["approval"].on_top is False


def test_endpoint_file_is_removed_only_when_it_is_ours(tmp_path):
    from app.desktop.shell import remove_endpoint_file

    path = tmp_path / "endpoint.json"
    path.write_text(json.dumps({"url": "http://127.0.0.1:1", "token": "theirs"}))
    remove_endpoint_file(path, "ours")
    assert path.exists()  # a later launch's file stays
    remove_endpoint_file(path, "theirs")
    assert not path.exists()


def test_no_arguments_without_a_display_prints_help_not_a_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(CLI, env={**env, "CLOUDOPS_HOME": str(tmp_path)}, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert "Usage:" in done.stdout and "no desktop: no display" in done.stdout
    assert not (tmp_path / "endpoint.json").exists()


def test_offline_toggle_is_written_to_config(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from app.config import load_config
    from app.desktop.shell import DesktopApp

    monkeypatch.setenv("CLOUDOPS_HOME", str(tmp_path))
    service = SimpleNamespace(current_config=load_config)
    desktop = DesktopApp(SimpleNamespace(token="t", service=service))
    assert desktop.offline is False
    desktop.set_offline(True)
    assert load_config().offline is True and desktop.offline is True
    desktop.set_offline(False)
    assert load_config().offline is False


@pytest.mark.skipif(importlib.util.find_spec("webview") is None, reason=f"needs pip install {PIP}")
def test_pywebview_bridge_is_built_without_eval():
    """pywebview's bridge must survive the UI's CSP (no 'unsafe-eval'): this pywebview still has the
    line the patch replaces, and the patched script has no ``new Function`` left."""
    from webview import util

    from app.desktop.shell import _CLOSURE, _NEW_FUNCTION, make_bridge_csp_safe

    api_js = (Path(util.__file__).parent / "js" / "api.js").read_text()
    assert _NEW_FUNCTION.search(api_js), "pywebview's api.js changed: revisit app.desktop.shell.make_bridge_csp_safe"
    patched = _NEW_FUNCTION.sub(lambda _: _CLOSURE, api_js)
    assert "new Function" not in patched and "eval(" not in patched
    assert make_bridge_csp_safe()


@pytest.mark.skipif(importlib.util.find_spec("webview") is None, reason=f"needs pip install {PIP}")
def test_gtk_backend_bridge_needs_no_eval():
    """The GTK backend (Linux's default windows) reaches Python by posting a message from api.js (no
    eval) and hands return values back through the embedder's own evaluate_javascript, which the page's
    CSP does not govern, once make_bridge_csp_safe routes them through run_js. If pywebview changes
    either path, revisit the patch (the real-display test below proves the token still arrives)."""
    import inspect

    from webview import util

    api_js = (Path(util.__file__).parent / "js" / "api.js").read_text()
    gtk_case = api_js[api_js.index("case 'gtkwebkit2':"):]
    gtk_case = gtk_case[:gtk_case.index("case ", len("case 'gtkwebkit2':"))]
    assert "window.webkit.messageHandlers.jsBridge.postMessage(" in gtk_case and "eval" not in gtk_case
    gtk_source = (Path(util.__file__).parent / "platforms" / "gtk.py").read_text()
    evaluate = gtk_source[gtk_source.index("    def evaluate_js(self, script, parse_json):"):]
    evaluate = evaluate[:evaluate.index("\n    def ", 10)]
    assert "self.webview.evaluate_javascript(" in evaluate and "eval(" not in evaluate
    from webview.window import Window

    from app.desktop.shell import make_bridge_csp_safe

    assert make_bridge_csp_safe()
    assert "run_js" in inspect.getsource(Window.evaluate_js)  # the return values skip Window's eval wrapper


def test_missing_webkitgtk_is_one_clear_sentence(tmp_path):
    """Linux's windows need the system's WebKitGTK (a declared dependency of the bundle): without it,
    ``cloudops`` says so in one sentence naming the package, and ``cloudops app`` falls back to the
    headless endpoint rather than failing later inside GTK."""
    code = ("import sys, app.desktop.shell as d; d._webkitgtk_available = lambda: False; "
            "from app.interfaces.cli import main; main(sys.argv[1:], prog_name='cloudops')")
    env = {**os.environ, "DISPLAY": ":1999", "CLOUDOPS_HOME": str(tmp_path), "CLOUDOPS_WEB_ENGINE": "gtk"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    from app.desktop.shell import WEBKITGTK_MISSING

    assert f"(no desktop: {WEBKITGTK_MISSING}; `cloudops app --headless` runs the local endpoint alone)" in done.stdout
    assert WEBKITGTK_MISSING.count(". ") == 0 and "gir1.2-webkit2-4.1" in WEBKITGTK_MISSING
    assert not (tmp_path / "endpoint.json").exists()


def test_web_engine_choice(monkeypatch):
    from app.desktop import shell as desktop

    monkeypatch.setenv("CLOUDOPS_WEB_ENGINE", "qt")
    assert desktop.linux_web_engine() == "qt"
    monkeypatch.setenv("CLOUDOPS_WEB_ENGINE", "GTK")
    assert desktop.linux_web_engine() == "gtk"
    monkeypatch.delenv("CLOUDOPS_WEB_ENGINE")
    found = {"webview.platforms.gtk": False, "PyQt6.QtWebEngineWidgets": True}
    monkeypatch.setattr(desktop, "_found", lambda module: found.get(module, True))
    assert desktop.linux_web_engine() == "qt"  # a bundle built with Qt carries no GTK backend
    found["webview.platforms.gtk"] = True
    assert desktop.linux_web_engine() == "gtk"  # both installed: the system's web view, as on macOS and Windows


# ---- the real app on a real X display ----------------------------------------------------------

def _missing() -> list[str]:
    tools = [t for t in ("Xvfb", "xdotool", "import", "trayer", "dbus-run-session") if not shutil.which(t)]
    modules = [m for m in ("webview", "pystray", "gi", "PIL", "Xlib") if importlib.util.find_spec(m) is None]
    return tools + modules


def _qt_webengine_loads() -> str | None:
    """None when PyQt6's web engine imports (its shared libraries are there), else the error."""
    probe = subprocess.run([sys.executable, "-c", "import PyQt6.QtWebEngineWidgets"], capture_output=True, text=True,
                           timeout=60)
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


def _free_display() -> int:
    for number in range(90, 200):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return number
    raise RuntimeError("no free X display number")


@pytest.fixture
def display():
    """A private Xvfb with a tray (trayer) docked at the top right; torn down after the test."""
    missing = _missing()
    if missing:
        pytest.skip(f"desktop test needs {', '.join(missing)}: apt-get install {APT}; pip install {PIP}")
    number = _free_display()
    name = f":{number}"
    xvfb = subprocess.Popen(["Xvfb", name, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    env = {**os.environ, "DISPLAY": name}
    trayer = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "160",
                               "--height", "32", "--transparent", "false", "--tint", "0x333333"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        yield env
    finally:
        for proc in (trayer, xvfb):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc), zombies excluded."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _is_app(pid: int) -> bool:
    """The app's own process: ``python -m app.interfaces.cli app``, or the bundle's ``cloudops app``."""
    argv = _cmdline(pid).split("\0")
    return "app.interfaces.cli" in argv or (BUNDLE is not None and argv[0] == str(BUNDLE / "cloudops"))


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _xdo(env: dict, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=20).stdout.strip()


def _wait_window(env: dict, pattern: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _xdo(env, "search", "--onlyvisible", "--name", pattern)
        if found:
            return found.split()[0]
        time.sleep(0.3)
    raise AssertionError(f"no visible window named {pattern!r}")


def _close_like_a_window_manager(env: dict, window: str) -> None:
    """Send WM_DELETE_WINDOW, the message a window manager sends when the user clicks the close button
    (Xvfb runs no window manager, so the test plays its part)."""
    from Xlib import X, display, protocol

    screen = display.Display(env["DISPLAY"])
    try:
        target = screen.create_resource_object("window", int(window))
        wm_protocols, wm_delete = screen.intern_atom("WM_PROTOCOLS"), screen.intern_atom("WM_DELETE_WINDOW")
        event = protocol.event.ClientMessage(window=target, client_type=wm_protocols,
                                             data=(32, [wm_delete, X.CurrentTime, 0, 0, 0]))
        target.send_event(event, event_mask=X.NoEventMask)
        screen.flush()
    finally:
        screen.close()


def _closed_like_a_window_manager(env: dict, pattern: str, attempts: int = 3) -> bool:
    """Close the visible window named ``pattern`` and wait until it is hidden. On a loaded machine the
    first close can reach a native window the web engine replaces while it starts (seen once with Qt in a
    full run): the close is then sent again to what is visible, as a user would click it again."""
    for _ in range(attempts):
        for window in (_xdo(env, "search", "--onlyvisible", "--name", pattern) or _wait_window(env, pattern)).split():
            _close_like_a_window_manager(env, window)
        if _gone(env, pattern, timeout=10):
            return True
    return False


def _gone(env: dict, pattern: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _xdo(env, "search", "--onlyvisible", "--name", pattern):
            return True
        time.sleep(0.2)
    return False


def _menu(env: dict, keys: list[str], done, timeout: float = 20, attempts: int = 3) -> None:
    """Pick a tray menu item with the keyboard until ``done()`` holds. On a loaded machine the menu may
    map after the keys were sent (they then go nowhere and change nothing), so it is tried again."""
    for _ in range(attempts):
        _open_tray_menu(env)
        _xdo(env, "key", *keys)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.2)
        _xdo(env, "key", "Escape")  # a menu still open would swallow the next click
    raise AssertionError(f"tray menu keys {keys} had no effect")


def _open_tray_menu(env: dict) -> None:
    """Right click on the icon docked in trayer (its X window carries the icon's title)."""
    icon = _wait_window(env, "^CloudOps · ")
    geometry = dict(line.split("=", 1) for line in _xdo(env, "getwindowgeometry", "--shell", icon).splitlines())
    x, y = int(geometry["X"]) + int(geometry["WIDTH"]) // 2, int(geometry["Y"]) + int(geometry["HEIGHT"]) // 2
    _xdo(env, "mousemove", str(x), str(y))
    time.sleep(0.2)
    _xdo(env, "click", "3")
    time.sleep(1.0)


PROBE_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>probe</title>
<script src="/ui/probe.js"></script></head><body><h1 id="route">probe</h1><p id="out">waiting</p></body></html>"""
PROBE_JS = """window.addEventListener("pywebviewready", async function () {
  const route = location.hash.slice(1) || "none";
  document.getElementById("route").textContent = "route: " + route;
  const token = await window.pywebview.api.get_token();
  const reply = await fetch("/v1/health", { headers: { Authorization: "Bearer " + token } });
  document.getElementById("out").textContent = "token from the bridge: HTTP " + reply.status;
  await fetch("/v1/plan", { method: "POST", headers: { Authorization: "Bearer " + token,
    "Content-Type": "application/json" }, body: JSON.stringify({ prompt: "probe " + route }) });
});"""


def _webkitgtk_missing() -> str | None:
    probe = subprocess.run([sys.executable, "-c", "import gi; gi.require_version('WebKit2', '4.1'); "
                            "from gi.repository import WebKit2"], capture_output=True, text=True, timeout=60)
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


ENGINE_PROCESS = {"gtk": "WebKitWebProcess", "qt": "QtWebEngineProcess"}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["gtk", "qt"])
def test_tray_app_on_a_real_display(engine, display, tmp_path):
    if engine == "qt" and (importlib.util.find_spec("PyQt6") is None or _qt_webengine_loads()):
        pytest.skip(f"PyQt6 web engine does not load ({_qt_webengine_loads() if importlib.util.find_spec('PyQt6') else 'no PyQt6'}): "
                    f"apt-get install {APT}; pip install 'pywebview[qt]'")
    if engine == "gtk" and _webkitgtk_missing():
        pytest.skip(f"WebKitGTK does not load ({_webkitgtk_missing()}): apt-get install {APT}")
    command = CLI
    if BUNDLE is not None:
        if (BUNDLE / "_internal" / "PyQt6").is_dir() != (engine == "qt"):
            pytest.skip(f"the bundle at {BUNDLE} was not built with the {engine} web engine")
        command = [str(BUNDLE / "cloudops")]
    env = {**display, "CLOUDOPS_WEB_ENGINE": engine}
    home, ui = tmp_path / "home", tmp_path / "ui"
    home.mkdir()
    ui.mkdir()
    (ui / "index.html").write_text(PROBE_HTML)
    (ui / "probe.js").write_text(PROBE_JS)
    shots = tmp_path / "shots"
    shots.mkdir()
    env = {**env, "CLOUDOPS_HOME": str(home), "CLOUDOPS_UI_DIR": str(ui), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(["dbus-run-session", "--", *command, "app"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("cloudops app: ready" in line for line in lines) and time.monotonic() < deadline:
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.1)
        assert any("cloudops app: ready" in line for line in lines), "".join(lines)

        info = json.loads((home / "endpoint.json").read_text())
        auth = {"Authorization": f"Bearer {info['token']}"}
        assert httpx.get(info["url"] + "/v1/health", headers=auth, timeout=5).json()["role"] == "local"
        subprocess.run(["import", "-window", "root", str(shots / "1-tray.png")], env=env, check=True, timeout=30)

        # The real tray: right click the docked icon, pick "Open CloudOps" (second item) with the keyboard.
        _open_tray_menu(env)
        subprocess.run(["import", "-window", "root", str(shots / "2-menu.png")], env=env, check=True, timeout=30)
        _xdo(env, "key", "Escape")
        main_shown = lambda: bool(_xdo(env, "search", "--onlyvisible", "--name", "^CloudOps$"))
        _menu(env, ["Down", "Down", "Return"], main_shown, timeout=60)  # the first window starts the web engine

        # The page got the token from get_token() and used it: its plan is in the audit trail.
        deadline = time.monotonic() + 180
        prompts: list[str] = []
        while "probe explorer" not in prompts and time.monotonic() < deadline:
            events = httpx.get(info["url"] + "/v1/audit", headers=auth, timeout=10).json()
            prompts = [e.get("prompt") for e in events]
            time.sleep(1)
        assert "probe explorer" in prompts, prompts
        assert info["token"] not in json.dumps(events)  # ... and the token itself is never recorded
        subprocess.run(["import", "-window", "root", str(shots / "3-main.png")], env=env, check=True, timeout=30)

        app_pid = next(p for p in _descendants(proc.pid) if _is_app(p))
        tree = _descendants(proc.pid)
        assert len(tree) >= 3  # dbus-daemon, the app, the web engine's processes
        engines = {name for name, marker in ENGINE_PROCESS.items() for p in tree if marker in _cmdline(p)}
        assert engines == {engine}, (engine, [_cmdline(p) for p in tree])  # the engine asked for, and only it

        # Closing the window (as a window manager would) hides it; the app and the endpoint stay.
        assert _closed_like_a_window_manager(env, "^CloudOps$"), "the main window is still shown after close"
        assert proc.poll() is None
        assert httpx.get(info["url"] + "/v1/health", headers=auth, timeout=5).status_code == 200
        _menu(env, ["Down", "Down", "Return"], main_shown)  # the same window, shown again

        # Offline mode from the real tray menu (the fourth selectable item; the status line is not
        # selectable): it is written to config.yaml, where the endpoint and the settings page read it.
        _menu(env, ["Down", "Down", "Down", "Down", "Return"], lambda: "offline: true" in _read(home / "config.yaml"))

        # Quit from the real tray menu: its last item.
        _menu(env, ["Up", "Return"], lambda: proc.poll() is not None, timeout=30)
        assert proc.wait(timeout=60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:  # a failed step: end the app itself (SIGTERM is its graceful Quit), then the rest
            for pid in sorted(_descendants(proc.pid)):
                if _is_app(pid):
                    os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for pid in _descendants(proc.pid) | {proc.pid}:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                proc.wait()
    deadline = time.monotonic() + 5  # the web engine's helpers notice their browser process is gone within ~1 s
    while [p for p in tree if _alive(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in tree if _alive(p)], "processes left after Quit"
    assert not _alive(app_pid)
    assert not (home / "endpoint.json").exists()
    assert any("cloudops app: stopped" in line for line in lines)
    assert not [line for line in lines if "Traceback" in line], "".join(lines)  # a clean exit, no noise


# ---- issue 15: approval in the real windows ----------------------------------------------------------

def _window_box(env: dict, window: str) -> tuple[int, int, int, int]:
    geometry = dict(line.split("=", 1) for line in _xdo(env, "getwindowgeometry", "--shell", window).splitlines())
    return int(geometry["X"]), int(geometry["Y"]), int(geometry["WIDTH"]), int(geometry["HEIGHT"])


def _click(env: dict, x: int, y: int) -> None:
    _xdo(env, "mousemove", str(x), str(y))
    time.sleep(0.2)
    _xdo(env, "click", "1")
    time.sleep(0.3)


def _keys(env: dict, *keys: str) -> None:
    for key in keys:
        _xdo(env, "key", key)
        time.sleep(0.15)


def _events(info: dict, request_id: str | None = None) -> list[dict]:
    events = httpx.get(info["url"] + "/v1/audit?limit=1000", headers={"Authorization": f"Bearer {info['token']}"},
                       timeout=10).json()
    return [e for e in events if request_id is None or e["request_id"] == request_id]


def _wait_for(check, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _instance_state(name: str) -> str:
    import boto3

    ec2 = boto3.Session(profile_name="prod").client("ec2", region_name="us-west-2")
    found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])["Reservations"]
    return [i["State"]["Name"] for r in found for i in r["Instances"]][0]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["gtk", "qt"])
def test_critical_plan_in_the_real_windows(engine, display, tmp_path):
    """Issue 15 on a real display, in the real UI (each Linux web engine) over a moto estate:
    in Quick ask, Ctrl+Enter and single keys do nothing on a critical production plan; "Open approval
    view" opens the approval window (an ordinary window, Quick ask hidden) where no key approves either;
    a sentence typed into Quick ask reopened from the tray never reaches the approval window; approving
    takes the typed name; the plan runs once, and a second Ctrl+Enter in Quick ask runs nothing."""
    if engine == "qt" and (importlib.util.find_spec("PyQt6") is None or _qt_webengine_loads()):
        pytest.skip(f"PyQt6 web engine does not load: apt-get install {APT}; pip install 'pywebview[qt]'")
    if engine == "gtk" and _webkitgtk_missing():
        pytest.skip(f"WebKitGTK does not load ({_webkitgtk_missing()}): apt-get install {APT}")
    from app.config import save_config
    from app.demo.demo_estate import demo_config, simulated_estate

    home = tmp_path / "home"
    home.mkdir()
    shots = tmp_path / "shots"
    shots.mkdir()
    shot = lambda name: subprocess.run(["import", "-window", "root", str(shots / f"{name}.png")], env=display,
                                       timeout=60, check=False)
    with simulated_estate():
        save_config(demo_config(), home / "config.yaml")
        env = {**os.environ, "DISPLAY": display["DISPLAY"], "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1",
               "CLOUDOPS_WEB_ENGINE": engine, "CLOUDOPS_SCHEDULE_DELAY_S": "3600", "NO_PROXY": "127.0.0.1,localhost"}
        proc = subprocess.Popen(["dbus-run-session", "--", *CLI, "app"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
        try:
            _wait_for(lambda: any("cloudops app: ready" in line for line in lines) or proc.poll() is not None, "the app", 90)
            assert proc.poll() is None, "".join(lines)
            info = json.loads((home / "endpoint.json").read_text())
            auth = {"Authorization": f"Bearer {info['token']}"}
            report = httpx.post(info["url"] + "/v1/sync", json={}, headers=auth, timeout=600).json()
            assert report["errors"] == [], report
            assert _instance_state("web-server-2") == "running"

            # Quick ask from the tray icon's left click (its default item); the prompt has the focus.
            icon = _wait_window(display, "^CloudOps · ")
            x, y, w, h = _window_box(display, icon)
            _click(display, x + w // 2, y + h // 2)
            quick = _wait_window(display, "^CloudOps · Quick ask$", timeout=120)
            qx, qy, qw, qh = _window_box(display, quick)
            time.sleep(3)  # the page loads and asks the bridge for the token
            _click(display, qx + 200, qy + 85)  # the prompt's label (its click focuses the prompt)
            prompt = "terminate web-server-2 in production"
            _xdo(display, "type", "--delay", "40", prompt)
            _keys(display, "Escape", "Return")
            plan = _wait_for(lambda: next((e for e in _events(info) if e["kind"] == "plan" and e["prompt"] == prompt),
                                          None), "the plan")
            request_id = plan["request_id"]
            time.sleep(3)
            shot("1-quick-ask-critical")
            _keys(display, "ctrl+Return", "ctrl+Return")
            time.sleep(3)
            assert [e["kind"] for e in _events(info, request_id)] == ["plan"], _events(info, request_id)

            # Tab from the prompt: Plan, the explanation's summary, the command, Copy, the name box, then
            # "Open approval view" (the action button is disabled until the name is typed: no Tab stop).
            _keys(display, "Tab", "Tab", "Tab", "Tab", "Tab", "Tab", "Return")
            approval = _wait_window(display, "^CloudOps · Approve plan$", timeout=60)
            assert _gone(display, "^CloudOps · Quick ask$", timeout=20), "Quick ask still shown over the approval"
            time.sleep(4)
            shot("2-approval")
            ax, ay, aw, ah = _window_box(display, approval)
            _click(display, ax + 400, ay + 85)  # on the page's heading, right of its words: nothing to press
            _keys(display, "a", "A", "y", "d", "space", "Return", "ctrl+Return")
            time.sleep(3)
            _keys(display, "Home")  # Space scrolled the page: back to the top (the heading keeps the focus)
            kinds = [e["kind"] for e in _events(info, request_id)]
            assert "approval" not in kinds and "denial" not in kinds and "step" not in kinds, kinds

            # Quick ask again from the tray: its prompt takes the focus (not the button it was left on), and
            # a sentence typed there stays there.
            _click(display, x + w // 2, y + h // 2)
            _wait_window(display, "^CloudOps · Quick ask$", timeout=60)
            time.sleep(2)
            _keys(display, "ctrl+a")
            sentence = "yes approve and run it now"
            _xdo(display, "type", "--delay", "40", sentence)
            _keys(display, "ctrl+Return", "Return")
            # The sentence went into Quick ask's prompt (Enter planned it), not into the approval window.
            _wait_for(lambda: [e for e in _events(info) if e["kind"] == "plan" and e["prompt"] == sentence],
                      "the typed sentence planned in Quick ask", 120)
            time.sleep(2)
            shot("3-quick-ask-typed")
            kinds = [e["kind"] for e in _events(info, request_id)]
            assert "approval" not in kinds and "step" not in kinds, kinds
            assert _instance_state("web-server-2") == "running"

            # In the approval window: from its heading, Tab to the name box (past the explanation's summary,
            # the command and Copy), type the name, Tab to the now enabled button, Enter; focus then rests
            # on the approval's status line, and the next Tab is Run now: Enter.
            assert _closed_like_a_window_manager(display, "^CloudOps · Quick ask$")  # back to the approval window
            _xdo(display, "windowraise", approval)
            _click(display, ax + 400, ay + 85)
            _keys(display, *["Tab"] * 4)
            _xdo(display, "type", "--delay", "40", "web-server-2")
            _keys(display, "Tab", "Return")
            _wait_for(lambda: "approval" in [e["kind"] for e in _events(info, request_id)], "the approval", 30)
            _keys(display, "Tab", "Return")
            _wait_for(lambda: [e for e in _events(info, request_id) if e["kind"] == "step"], "the run", 120)
            time.sleep(2)
            shot("4-approval-done")
            assert _instance_state("web-server-2") in ("shutting-down", "terminated")

            # Back in Quick ask, Ctrl+Enter and Enter run nothing a second time.
            _click(display, x + w // 2, y + h // 2)
            _wait_window(display, "^CloudOps · Quick ask$", timeout=60)
            time.sleep(3)
            _keys(display, "ctrl+Return", "Tab", "Return", "space")
            time.sleep(3)
            shot("5-quick-ask-after")
            steps = [e for e in _events(info, request_id) if e["kind"] == "step"]
            assert [e["operation"] for e in steps] == ["TerminateInstances"], steps
        finally:
            for pid in sorted(_descendants(proc.pid)):
                if _is_app(pid):
                    os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for pid in _descendants(proc.pid) | {proc.pid}:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                proc.wait()
    assert not [line for line in lines if "Traceback" in line], "".join(lines)
