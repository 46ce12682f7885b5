"""The desktop app behind ``cloudops`` / ``cloudops app``: the local endpoint, the tray icon and the
pywebview windows in one process.

The windows' web engine is the platform's own, as pywebview does on macOS (WKWebView) and Windows
(Edge WebView2): on Linux that is the system's WebKitGTK through pywebview's GTK backend (``gtk``, the
default; a declared system dependency of the Linux bundle, like WebView2 on Windows). Qt WebEngine
(``qt``: self-contained but ~330 MB in the bundle) stays available: ``CLOUDOPS_WEB_ENGINE=qt`` from
source, or a bundle built with it (packaging/README.md).

Threads, and why:
* main thread: the GUI loop. Linux/GTK: one GLib main loop for the tray and, once a window is asked
  for, pywebview's GTK application inside it (GTK is single-threaded: the tray and the windows share
  that one loop). Linux/Qt and Windows: pywebview's loop; Cocoa on macOS, which insists on it;
* ``endpoint``: uvicorn serving the local endpoint (the same app as ``cloudops app --headless``);
* ``tray`` (Qt route only): pystray's own GTK loop, run with ``QT_NO_GLIB=1`` so Qt and GTK each keep
  their own event loop instead of sharing GLib's default context from two threads.

The web engine itself starts lazily: until the first window is asked for, the GUI loop only runs the
tray, so an idle tray app costs the endpoint and the tray, not a web engine (measured in
bench/bench_desktop.py). The first window pays the web engine's start; after that, windows are kept.
Closing a window hides it; only Quit ends the app: it hides the tray, stops uvicorn gracefully, closes
the estate, removes ``endpoint.json`` and closes the windows, after which the GUI loop returns and the
process exits with no child left.

The per-launch token reaches the page only through pywebview's JS bridge (``get_token()``), never
through a URL. Nothing here loads a model: the embedding model and the LLM load on the first request
that needs them.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from app.interfaces.endpoint import Endpoint, remove_endpoint_file, start_endpoint  # noqa: F401 - re-exported

log = logging.getLogger("cloudops.desktop")

READY_LINE = "cloudops app: ready"  # the benchmark and the Xvfb test wait for this line on stderr
PLAN_ROUTE = re.compile(r"^plan/[A-Za-z0-9_.:-]{1,128}$")
NAMED_ROUTES = {"ask", "explorer", "audit", "settings"}


class DesktopUnavailable(RuntimeError):
    """No display, or the GUI packages are missing: the caller falls back to the headless endpoint."""


WEBKITGTK_MISSING = ("the system's WebKitGTK is missing, which the windows need on Linux "
                     "(Debian/Ubuntu: apt install gir1.2-webkit2-4.1; Fedora: dnf install webkit2gtk4.1)")


def _found(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing
        return False


def linux_web_engine() -> str:
    """The Linux windows' web engine: ``CLOUDOPS_WEB_ENGINE`` (``gtk`` or ``qt``) when set; else the one
    this install (or bundle) carries, GTK when both are there. The bundle's spec leaves the other out."""
    chosen = os.environ.get("CLOUDOPS_WEB_ENGINE", "").strip().lower()
    if chosen in ("gtk", "qt"):
        return chosen
    if not _found("webview.platforms.gtk") and _found("PyQt6.QtWebEngineWidgets"):
        return "qt"
    return "gtk"


def _webkitgtk_available() -> bool:
    """Whether GTK 3 and WebKit2 (4.1, else 4.0) introspection data are installed (nothing is loaded)."""
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        try:
            gi.require_version("WebKit2", "4.1")
        except ValueError:
            gi.require_version("WebKit2", "4.0")
        return True
    except (ImportError, ValueError):
        return False


def prepare_environment() -> None:
    """Environment the GUI toolkits read at import time, so it must be set before importing them.

    * Linux: pystray's GTK backend (the only one with a menu on a plain X tray). Qt route: ``QT_NO_GLIB=1``
      so the Qt loop and the GTK loop in the tray thread do not share one GLib context; Chromium's
      sandbox is refused to root, so as root the Qt web engine runs without it. GTK route: WebKitGTK's
      bubblewrap sandbox cannot set up its namespaces for root in a container either, so as root it is
      turned off the same way (a developer box or CI, not a user); in a bundle, the bootloader's
      LD_LIBRARY_PATH is undone for the system's WebKit helper processes.
    """
    if sys.platform.startswith("linux"):
        os.environ.setdefault("PYSTRAY_BACKEND", "gtk")
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        if linux_web_engine() == "qt":
            os.environ.setdefault("QT_NO_GLIB", "1")
            if root:
                flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
                if "--no-sandbox" not in flags:
                    os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = (flags + " --no-sandbox").strip()
        else:
            if root:
                os.environ.setdefault("WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS", "1")
            if getattr(sys, "frozen", False):
                # PyInstaller's bootloader points LD_LIBRARY_PATH at the bundle; WebKitGTK's helper
                # processes are system programs and must load the system's libraries, not the bundle's.
                original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
                if original:
                    os.environ["LD_LIBRARY_PATH"] = original
                else:
                    os.environ.pop("LD_LIBRARY_PATH", None)


def check_available() -> None:
    """Raise DesktopUnavailable naming what is missing (a display, a package, the system's WebKitGTK)."""
    linux = sys.platform.startswith("linux")
    if linux and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DesktopUnavailable("no display (DISPLAY is not set)")
    missing = [name for name, module in (("pywebview", "webview"), ("pystray", "pystray"), ("Pillow", "PIL"))
               if not _found(module)]
    if linux and not _found("gi"):
        missing.append("PyGObject (GTK for the tray and the windows)")
    if missing:
        raise DesktopUnavailable("missing " + ", ".join(missing) + " (pip install 'cloudops-agent[desktop]')")
    if linux and linux_web_engine() == "gtk" and not _webkitgtk_available():
        raise DesktopUnavailable(WEBKITGTK_MISSING)


# pywebview's JS bridge relies on eval twice, and the UI's Content-Security-Policy (``script-src 'self'``,
# no 'unsafe-eval') refuses both, so the page would never get its token:
# 1. each ``window.pywebview.api.*`` function is built with ``new Function(...)``: the same function,
#    written as a closure, needs no eval;
# 2. a Python method's return value is handed back with ``evaluate_js``, which wraps the script in
#    ``eval("...")``: that one script is run as is with ``run_js`` (the embedder's own call, which the
#    page's CSP does not govern). The CSP stays strict.
_NEW_FUNCTION = re.compile(r"nestedObject\[functionName\]\s*=\s*new Function\(\s*sanitize_params\(params\),\s*funcBody\s*\);")
_CLOSURE = ("nestedObject[functionName] = (function (name) { return function () {"
            " var __id = (Math.random() + '').substring(2);"
            " var promise = new Promise(function (resolve, reject) {"
            " window.pywebview._checkValue(name, resolve, reject, __id); });"
            " window.pywebview._jsApiCallback(name, Array.prototype.slice.call(arguments), __id);"
            " return promise; }; })(funcName);")

_RETURN_VALUE_PREFIX = "window.pywebview._returnValuesCallbacks["


def make_bridge_csp_safe() -> bool:
    """Patch pywebview's injected bridge script to build the API functions without eval.

    Returns False (and logs) when this pywebview's script no longer has the expected line, so an
    upgrade that changes it is noticed by the desktop test rather than silently breaking the token.
    """
    import webview.util as util

    if getattr(util.load_js_files, "_cloudops_csp_safe", False):
        return True
    original = util.load_js_files

    def load_js_files(*args, **kwargs):
        js_code, finish_script = original(*args, **kwargs)
        return _NEW_FUNCTION.sub(lambda _: _CLOSURE, js_code), finish_script

    load_js_files._cloudops_csp_safe = True  # type: ignore[attr-defined]
    probe = (Path(util.__file__).parent / "js" / "api.js").read_text(encoding="utf-8")
    if not _NEW_FUNCTION.search(probe):
        log.warning("pywebview's api.js changed: the JS bridge may be refused by the UI's CSP")
        return False
    util.load_js_files = load_js_files

    from webview.window import Window

    evaluate_js = Window.evaluate_js

    def evaluate_js_csp_safe(self, script: str, callback=None):
        if callback is None and script.startswith(_RETURN_VALUE_PREFIX):
            return self.run_js(script)
        return evaluate_js(self, script, callback)

    Window.evaluate_js = evaluate_js_csp_safe
    return True


class Bridge:
    """The JS API pywebview exposes to the pages as ``window.pywebview.api``.

    Only public methods are exposed (pywebview skips names starting with ``_``), so the token and the
    opener stay private attributes. ``get_token`` is the contract with the UI.
    """

    def __init__(self, token: str, opener: Callable[[str], bool]):
        self._token = token
        self._opener = opener

    def get_token(self) -> str:
        """The per-launch bearer token for the local endpoint."""
        return self._token

    def open_window(self, route: str) -> bool:
        """Show the window for ``route`` (``ask``, ``explorer``, ``audit``, ``settings``, ``plan/<id>``):
        lets the Quick ask page open an approval window for the plan it just showed."""
        return self._opener(str(route))


@dataclass
class WindowSpec:
    title: str
    route: str
    width: int
    height: int
    on_top: bool = False


# Quick ask floats above other apps (a launcher); the approval window never does: an always-on-top
# approval window once covered Quick ask, so that a sentence typed into what looked like Quick ask
# reached it. It opens where the operator asked for it and stays an ordinary window.
WINDOWS = {
    "quick": WindowSpec("CloudOps · Quick ask", "ask", 680, 520, on_top=True),
    "main": WindowSpec("CloudOps", "explorer", 1200, 800),
    "approval": WindowSpec("CloudOps · Approve plan", "plan", 800, 720),
}


@dataclass
class DesktopApp:
    """Owns the endpoint, the tray and the windows; implements the tray's actions."""

    endpoint: Endpoint
    _windows: dict[str, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _quitting: threading.Event = field(default_factory=threading.Event)
    gui_wanted: threading.Event = field(default_factory=threading.Event)  # wakes the main thread
    _offline: bool = False
    tray: Any = None
    gui_started: bool = False

    def __post_init__(self) -> None:
        self.bridge = Bridge(self.endpoint.token, self.open_route)
        self._offline = _read_offline()

    # ---- windows -----------------------------------------------------------------------------

    def _page(self, route: str) -> str:
        return f"{self.endpoint.url}/#{route}"

    def window(self, kind: str, route: str | None = None, hidden: bool = True):
        """The window of ``kind``, created on first use; closing it only hides it."""
        import webview

        with self._lock:
            existing = self._windows.get(kind)
            if existing is not None:
                return existing
            spec = WINDOWS[kind]
            window = webview.create_window(spec.title, self._page(route or spec.route), js_api=self.bridge,
                                           width=spec.width, height=spec.height, hidden=hidden,
                                           on_top=spec.on_top, text_select=True)
            window.events.closing += self._hide_instead(window)
            self._windows[kind] = window
            return window

    def _hide_instead(self, window) -> Callable[[], bool]:
        def closing() -> bool:
            if self._quitting.is_set():
                return True  # Quit closes for real
            window.hide()
            return False  # cancels the close

        return closing

    def show(self, kind: str, route: str | None = None) -> None:
        """Show the window of ``kind``; with ``route``, also navigate it there (a hash change, no reload)."""
        if self._quitting.is_set():
            return
        with self._lock:
            created = kind not in self._windows
            window = self.window(kind, route, hidden=False)
            self.gui_wanted.set()  # the first window starts the GUI loop on the main thread
        if not created and route is not None:
            window.load_url(self._page(route))
        if not created:
            window.show()
            window.restore()
            tell_page_shown(window)

    def hide(self, kind: str) -> None:
        """Hide the window of ``kind`` if it exists (closing a window only ever hides it too)."""
        with self._lock:
            window = self._windows.get(kind)
        if window is not None and not self._quitting.is_set():
            window.hide()

    def show_quick_ask(self) -> None:
        self.show("quick")  # an existing window keeps its page (and what was typed)

    def show_main(self) -> None:
        self.show("main")

    def open_route(self, route: str) -> bool:
        """The bridge's ``open_window``: approval pages get their own window, the rest the main one.

        Opening an approval hides Quick ask (it keeps its page; the tray brings it back): Quick ask floats
        above other windows, and the decision must be made in the window that shows the whole plan, not
        under a prompt box that looks like the place to type."""
        if PLAN_ROUTE.match(route):
            self.show("approval", route)
            self.hide("quick")
            return True
        if route == "ask":
            self.show("quick", route)
            return True
        if route in NAMED_ROUTES:
            self.show("main", route)
            return True
        return False

    # ---- offline mode ------------------------------------------------------------------------

    @property
    def offline(self) -> bool:
        """config.yaml's ``offline`` (the settings page may change it too), else this run's toggle."""
        if offline_supported():
            current = getattr(self.endpoint.service, "current_config", None)
            try:
                return bool(current().offline if current else _read_offline())
            except Exception:
                return self._offline
        return self._offline

    def set_offline(self, offline: bool) -> None:
        """Offline: plans come from the local agent stack only, the agent server is never asked. Written
        to config.yaml, which the endpoint re-reads before each plan."""
        self._offline = offline
        _write_offline(offline)

    # ---- quit --------------------------------------------------------------------------------

    def quit(self) -> None:
        """Idempotent; safe from any thread (tray callback, signal, the GUI loop ending)."""
        with self._lock:
            if self._quitting.is_set():
                return
            self._quitting.set()
        log.info("quitting")
        if self.tray is not None:
            self.tray.stop()
        self.endpoint.stop()
        if not self.gui_started:
            self.gui_wanted.set()  # no GUI loop to end: wake the main thread, which returns
            return
        for window in list(self._windows.values()):
            try:
                window.destroy()
            except Exception:
                log.debug("destroying a window", exc_info=True)


SHOWN_EVENT = "window.dispatchEvent(new Event('cloudops:shown'))"


def tell_page_shown(window) -> None:
    """Tell a window's page it was shown again (hidden windows keep their page). Web engines do not all
    fire visibilitychange or focus for that, and Quick ask must then put the focus back in its prompt,
    never leave it on a button, and re-read the status of the plan on screen. ``run_js`` waits for the
    page on the GUI loop, so it is never called from the GUI thread (the tray's callbacks run there)."""
    def tell() -> None:
        try:
            window.run_js(SHOWN_EVENT)
        except Exception:  # noqa: BLE001 - a page still loading misses one hint; its own checks follow
            log.debug("telling the page it was shown", exc_info=True)

    threading.Thread(target=tell, name="page-shown", daemon=True).start()


def offline_supported() -> bool:
    """Whether config.yaml has the ``offline`` field (else the toggle lives in memory for this run)."""
    from app.config import Config

    return "offline" in Config.model_fields


def _read_offline() -> bool:
    if not offline_supported():
        return False
    from app.config import ConfigError, load_config

    try:
        return bool(getattr(load_config(), "offline", False))
    except ConfigError:
        return False


def _write_offline(offline: bool) -> None:
    if not offline_supported():
        log.info("config has no offline field: offline mode kept in memory for this run")
        return
    from app.config import load_config, save_config

    config = load_config()
    setattr(config, "offline", offline)
    save_config(config)


def run_desktop(local_stack_factory: Callable[[], Any], port: int = 0, echo: Callable[[str], None] = print) -> int:
    """Run the tray app until Quit (or SIGTERM / SIGINT). Returns the exit code."""
    started = time.monotonic()
    prepare_environment()
    check_available()
    import webview

    from app.desktop.tray import EndpointClient, Tray

    make_bridge_csp_safe()
    gtk = sys.platform.startswith("linux") and linux_web_engine() == "gtk"

    endpoint = start_endpoint(local_stack_factory, port)
    if not endpoint.wait_started():
        endpoint.stop()
        echo("cloudops app: the local endpoint did not start")
        return 1
    desktop = DesktopApp(endpoint)
    tray = Tray(desktop, EndpointClient(endpoint.url, endpoint.token))
    desktop.tray = tray
    tray.start(own_thread=not gtk)  # GTK route: the icon lives on the main thread's GLib loop (below)

    def announce() -> bool:
        if not tray.ready.wait(timeout=30):
            echo("cloudops app: the tray icon did not appear (is there a system tray?)")
        else:
            echo(f"{READY_LINE} in {time.monotonic() - started:.2f}s (endpoint {endpoint.url}, token in "
                 f"{endpoint.path}, tray icon shown)")
        return False

    def on_signal(signum, frame) -> None:
        threading.Thread(target=desktop.quit, name="quit-signal").start()

    if gtk:
        return _run_gtk(desktop, announce, on_signal, echo)
    announce()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not desktop.gui_wanted.wait(0.5):  # short waits: signal handlers run between them
            pass
        with desktop._lock:
            start = not desktop._quitting.is_set()
            desktop.gui_started = start
        if start:
            webview.start(gui="qt" if sys.platform.startswith("linux") else None, private_mode=True)
    finally:
        desktop.quit()  # the loop may also end by itself (the toolkit quit): clean up the same way
    echo("cloudops app: stopped")
    return 0


def _run_gtk(desktop: DesktopApp, announce: Callable[[], bool], on_signal, echo: Callable[[str], None]) -> int:
    """Linux/GTK: one GLib main loop on the main thread runs the tray; when the first window is asked
    for, pywebview's GTK application runs inside it (a nested loop on the same context, so the tray
    keeps answering) until Quit destroys the windows."""
    import webview
    from gi.repository import GLib

    loop = GLib.MainLoop()

    def poll() -> bool:
        if not desktop.gui_wanted.is_set():
            return True
        with desktop._lock:
            start = not desktop._quitting.is_set()
            desktop.gui_started = start
        try:
            if start:
                webview.start(gui="gtk", private_mode=True)  # returns once Quit has destroyed the windows
        finally:
            loop.quit()
        return False

    # After pystray's set-up (which resets SIGINT on the main thread); PyGObject's loop wakes up for
    # Python signal handlers, so SIGTERM / SIGINT still end the app through Quit.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    GLib.idle_add(announce)  # queued after the icon's show: ready once the loop has drawn it
    GLib.timeout_add(100, poll)
    try:
        loop.run()
    finally:
        desktop.quit()
    echo("cloudops app: stopped")
    return 0
