"""The tray icon of the desktop app (pystray): Quick ask, Open CloudOps, Sync now, a status line,
Offline mode, Quit.

Why the tray talks to the local endpoint over HTTP (status, sync) rather than to the estate objects:
the endpoint is the one owner of the index, and the tray is just another client of it, like the UI.
It never holds the estate open itself, so Quit has exactly one thing to close.

Threads: with the GTK windows (Linux's default), the icon lives on the main thread's GLib loop, which
the windows share; with the Qt windows, pystray's GTK backend runs its own GLib loop in a thread of its
own (Qt owns the main thread). Menu callbacks run on that GTK loop, so anything slow (a sync) and
anything touching windows goes to a worker thread: pywebview's window calls wait for the GUI loop, and
creates a window at once only when called off the main thread. The tray never calls ``evaluate_js``
(it would block the GUI thread waiting for itself).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol

from agent.bundle import bundled_path

log = logging.getLogger("cloudops.tray")
REFRESH_EVERY_S = 15.0


class TrayActions(Protocol):
    """What the tray asks of the desktop app (app.desktop.shell.DesktopApp implements it)."""

    def show_quick_ask(self) -> None: ...

    def show_main(self) -> None: ...

    def quit(self) -> None: ...

    def set_offline(self, offline: bool) -> None: ...

    @property
    def offline(self) -> bool: ...


@dataclass
class StatusLine:
    """The tray's status at a glance, computed from ``GET /v1/status``."""

    last_sync: datetime | None = None
    errors: int = 0
    documents: int = 0
    syncing: bool = False
    unreachable: bool = False

    def text(self, now: datetime | None = None) -> str:
        if self.unreachable:
            return "Endpoint not answering"
        if self.syncing:
            return "Syncing…"
        when = "never synced" if self.last_sync is None else f"synced {_ago(self.last_sync, now)}"
        errors = f"{self.errors} error{'s' if self.errors != 1 else ''}"
        return f"{self.documents} resources · {when} · {errors}"


def _utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _ago(moment: datetime, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    moment = _utc(moment)
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def status_from(body: dict) -> StatusLine:
    """The status line from the endpoint's ``/v1/status`` body: newest success, scopes in error."""
    scopes = body.get("scopes") or []
    successes = [_utc(datetime.fromisoformat(s["last_success"])) for s in scopes if s.get("last_success")]
    return StatusLine(last_sync=max(successes) if successes else None,
                      errors=sum(1 for s in scopes if s.get("last_error")),
                      documents=int(body.get("documents") or 0))


class EndpointClient:
    """The few endpoint calls the tray makes, with the per-launch token."""

    def __init__(self, url: str, token: str):
        self.url, self.headers = url.rstrip("/"), {"Authorization": f"Bearer {token}"}

    def status(self) -> dict:
        import httpx

        reply = httpx.get(f"{self.url}/v1/status", headers=self.headers, timeout=10)
        reply.raise_for_status()
        return reply.json()

    def sync(self) -> dict:
        import httpx

        # A full estate sync loads the embedding model the first time and may take minutes.
        reply = httpx.post(f"{self.url}/v1/sync", json={}, headers=self.headers, timeout=None)  # JSON: the endpoint refuses other bodies (CSRF)
        reply.raise_for_status()
        return reply.json()


def load_icon(offline: bool = False):
    """The tray image from packaging/icons (bundled alongside the code), drawn afresh if missing."""
    from PIL import Image

    path = bundled_path("packaging/icons") / ("cloudops-offline-64.png" if offline else "cloudops-64.png")
    if path.is_file():
        return Image.open(path).convert("RGBA")
    colour = (120, 128, 140, 255) if offline else (35, 99, 235, 255)
    return Image.new("RGBA", (64, 64), colour)


class Tray:
    """The pystray icon, its menu and the status refresher.

    ``ready`` is set once the icon is shown (pystray's setup callback): with the endpoint's health,
    that is what "the tray app is ready" means for the launch log line and the benchmark.
    """

    def __init__(self, actions: TrayActions, client: EndpointClient, on_ready: Callable[[], None] | None = None):
        self.actions, self.client, self.on_ready = actions, client, on_ready
        self.status = StatusLine()
        self.ready = threading.Event()
        self._stopped = threading.Event()
        self._icon = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self, own_thread: bool = True) -> None:
        """Build the icon and run its loop in a thread of its own (``own_thread``: the main thread belongs
        to Qt), or set it up on the calling thread, which must then run GLib's main loop (GTK windows)."""
        import pystray

        item = pystray.MenuItem
        menu = pystray.Menu(
            item("Quick ask", self._quick_ask, default=True),
            item("Open CloudOps", self._open_main),
            item("Sync now", self._sync_now, enabled=lambda _: not self.status.syncing),
            pystray.Menu.SEPARATOR,
            item(lambda _: self.status.text(), None, enabled=False),
            item("Offline mode", self._toggle_offline, checked=lambda _: self.actions.offline),
            pystray.Menu.SEPARATOR,
            item("Quit", self._quit),
        )
        self._icon = pystray.Icon("cloudops", load_icon(self.actions.offline), "CloudOps", menu)
        if not own_thread:
            # pystray finalises a detached icon at exit and hides its notifier on the way, which fails
            # when the session has no notification service (a bare Xvfb): noise, as in _run_icon.
            finalize = self._icon._finalize

            def quiet_finalize() -> None:
                try:
                    finalize()
                except Exception as exc:
                    log.debug("tray finalise: %s", exc)

            self._icon._finalize = quiet_finalize
            self._icon.run_detached(setup=self._setup)
            return
        self._thread = threading.Thread(target=self._run_icon, name="tray", daemon=True)
        self._thread.start()

    def _run_icon(self) -> None:
        try:
            self._icon.run(setup=self._setup)
        except Exception as exc:
            # pystray's GTK backend hides its notifier on the way out and fails when the session has
            # no notification service (a bare Xvfb); the icon is gone by then, so it is only noise.
            log.debug("tray loop ended with %s", exc)

    def _setup(self, icon) -> None:
        """pystray calls this in a thread of its own once the icon exists."""
        icon.visible = True
        self.ready.set()
        if self.on_ready:
            self.on_ready()
        self.refresh()
        while not self._stopped.wait(REFRESH_EVERY_S):
            self.refresh()

    def stop(self) -> None:
        self._stopped.set()
        if self._icon is not None:
            try:
                self._icon.visible = False
                self._icon.stop()
            except Exception:  # the icon's loop may already be gone; stopping must never fail Quit
                log.debug("tray stop", exc_info=True)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    # ---- status ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the status from the endpoint and redraw the menu (and the icon for offline)."""
        if self._stopped.is_set():
            return
        try:
            fresh = status_from(self.client.status())
        except Exception:
            fresh = StatusLine(unreachable=True)
        fresh.syncing = self.status.syncing
        self.status = fresh
        self._redraw()

    def _redraw(self) -> None:
        if self._icon is None or self._stopped.is_set():
            return
        self._icon.icon = load_icon(self.actions.offline)
        self._icon.title = f"CloudOps · {self.status.text()}"
        self._icon.update_menu()

    # ---- menu callbacks (GTK thread: keep them short) -----------------------------------------

    def _quick_ask(self, icon=None, item=None) -> None:
        threading.Thread(target=self.actions.show_quick_ask, name="tray-window", daemon=True).start()

    def _open_main(self, icon=None, item=None) -> None:
        threading.Thread(target=self.actions.show_main, name="tray-window", daemon=True).start()

    def _sync_now(self, icon=None, item=None) -> None:
        if self.status.syncing:
            return
        self.status.syncing = True
        self._redraw()
        threading.Thread(target=self._run_sync, name="tray-sync", daemon=True).start()

    def _run_sync(self) -> None:
        started = time.monotonic()
        try:
            report = self.client.sync()
            log.info("sync from the tray: %s scopes in %.1fs", len(report.get("scopes", [])),
                     time.monotonic() - started)
        except Exception as exc:
            log.warning("sync from the tray failed: %s", exc)
        finally:
            self.status.syncing = False
            self.refresh()

    def _toggle_offline(self, icon=None, item=None) -> None:
        self.actions.set_offline(not self.actions.offline)
        self._redraw()

    def _quit(self, icon=None, item=None) -> None:
        # Quit joins the tray thread, which is the thread running this callback: do it elsewhere.
        threading.Thread(target=self.actions.quit, name="quit").start()
