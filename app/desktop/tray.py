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
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Protocol

from agent.bundle import bundled_path
from app.estate.freshness import Freshness, age_words
from app.estate.sync_status import ScopeStatus

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
    """The tray's status at a glance, from ``GET /v1/status``: per scope, never the newest scope alone.

    Why per scope: after a sync in which 70 of 72 scopes failed, the two fresh ones said "synced just now"
    while the rest were 11 minutes old. The line counts the scopes whose last sync worked, gives the age of
    the newest of them and of the oldest data overall; the errors line names the failing accounts and
    regions and why, in words.
    """

    scopes: list[ScopeStatus] = field(default_factory=list)
    documents: int = 0
    account_errors: dict[str, str] = field(default_factory=dict)  # accounts a sync could not even start for
    syncing: bool = False  # a sync the tray started
    scheduled: bool = False  # a sync the app's scheduler is running
    unreachable: bool = False

    @property
    def errors(self) -> int:
        """How many scopes failed their last sync."""
        return sum(1 for s in self.scopes if Freshness.failed(s))

    @property
    def last_sync(self) -> datetime | None:
        successes = [_utc(s.last_success) for s in self.scopes if s.last_success]
        return max(successes) if successes else None

    def sync_text(self, now: datetime | None = None) -> str:
        """'synced 2 of 72 scopes 1 min ago; 70 failed (oldest data 11 min)'."""
        fresh = Freshness(self.scopes, float("inf"), now)
        unreached = f"; {_count(len(self.account_errors), 'account')} not reached" if self.account_errors else ""
        if not self.scopes:
            return ("not synced yet" + unreached) if self.account_errors else "never synced"
        ok = [s for s in self.scopes if not fresh.failed(s)]
        ages = [fresh.age_s(s) for s in self.scopes]
        known = [a for a in ages if a is not None]
        never = len(ages) - len(known)
        oldest = [f"oldest data {age_words(max(known))}"] if known and max(known) >= 60 else []
        if never:
            oldest.append(f"{_count(never, 'scope')} never synced")
        total, failed = len(self.scopes), len(self.scopes) - len(ok)
        detail = f" ({'; '.join(oldest)})" if oldest else ""
        if not ok:
            return f"all {total} scopes failed their last sync{detail}{unreached}"
        newest = min((fresh.age_s(s) for s in ok if s.last_success), default=0.0)
        if not failed:
            same = [o for o in oldest if o != f"oldest data {age_words(newest)}"]
            return f"synced {_count(total, 'scope')} {_ago(newest)}" + (f" ({'; '.join(same)})" if same else "") \
                + unreached
        return f"synced {len(ok)} of {total} scopes {_ago(newest)}; {failed} failed{detail}{unreached}"

    def errors_text(self) -> str | None:
        """'Failing: production in us-east-1, us-west-2 (AWS not reachable); staging (…)', or None."""
        by_account: dict[str, dict[str, list[str]]] = {}
        for s in self.scopes:
            if Freshness.failed(s):
                by_account.setdefault(s.account_name, {}).setdefault(reason_words(s.last_error), []).append(s.region)
        parts = []
        for account, reasons in sorted(by_account.items()):
            why, regions = max(reasons.items(), key=lambda item: len(item[1]))
            places = sorted({"global services" if r == "global" else r for rs in reasons.values() for r in rs})
            parts.append(f"{account} in {', '.join(places)} ({why})")
        parts += [f"{account} ({reason_words(error)})" for account, error in sorted(self.account_errors.items())]
        if not parts:
            return None
        shown = parts[:3] + ([f"{len(parts) - 3} more accounts"] if len(parts) > 3 else [])
        return "Failing: " + "; ".join(shown)

    def text(self, now: datetime | None = None) -> str:
        if self.unreachable:
            return "Endpoint not answering"
        if self.syncing or self.scheduled:
            return "Syncing…" + (f" · {self.documents} resources · {self.sync_text(now)}" if self.scopes else "")
        return f"{self.documents} resources · {self.sync_text(now)}"


def _utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _ago(seconds: float) -> str:
    words = age_words(seconds)
    return words if words == "just now" else f"{words} ago"


# An error as stored (app.awsclient.describe_error: 'Code: message' or a sentence) -> a few words.
_REASONS = [
    (re.compile(r"EndpointConnectionError|ConnectTimeout|ConnectionClosed|ReadTimeout|Could not connect", re.I),
     "AWS not reachable"),
    (re.compile(r"not in the AWS config file|ProfileNotFound", re.I), "profile not found"),
    (re.compile(r"no AWS credentials|NoCredentials|Unable to locate credentials", re.I), "no credentials"),
    (re.compile(r"ExpiredToken|InvalidClientTokenId|UnrecognizedClient|SignatureDoesNotMatch|security token", re.I),
     "credentials refused or expired"),
    (re.compile(r"AccessDenied|UnauthorizedOperation|not authorized", re.I), "access denied"),
    (re.compile(r"Throttl|Rate exceeded|TooManyRequests|RequestLimitExceeded", re.I), "throttled by AWS"),
]


def reason_words(error: str | None) -> str:
    """Why a scope failed, in a few words an operator acts on; an SSO login says which command to run."""
    text = str(error or "")
    login = re.search(r"`(aws sso login --profile [^`]+)`", text)
    if login:
        return f"sign in: {login.group(1)}"
    for pattern, words in _REASONS:
        if pattern.search(text):
            return words
    code = text.split(":", 1)[0].strip()
    return code if re.fullmatch(r"[A-Za-z][A-Za-z0-9.]{2,60}", code) else (text[:60] + "…" if len(text) > 60 else text)


def status_from(body: dict, manual: dict | None = None) -> StatusLine:
    """The status line from the endpoint's ``/v1/status`` body: the scopes' rows, and the accounts the last
    sync could not start for (their rows, if any, count as failed until a later success). ``manual``: the
    report of a sync the tray itself ran, when it is newer than the scheduler's last run."""
    runs = [r for r in ((body.get("schedule") or {}).get("last"), manual) if r and r.get("finished_at")]
    last = max(runs, key=lambda r: _utc(datetime.fromisoformat(r["finished_at"])), default=None)
    account_errors = {e["account"]: e.get("error") or "" for e in (last or {}).get("errors") or []
                      if e.get("account") and str(e.get("scope", "")).endswith("/*/*")}
    finished = _utc(datetime.fromisoformat(last["finished_at"])) if last else None
    defaults = {"scope": "", "account_id": "", "account_name": "", "region": "", "service": ""}
    scopes = []
    for row in body.get("scopes") or []:
        status = ScopeStatus.model_validate({**defaults, **row})
        error = account_errors.get(status.account_name)
        if error is not None and (status.last_success is None or _utc(status.last_success) < finished):
            status = status.model_copy(update={"last_error": error, "last_error_at": finished})
        scopes.append(status)
    named = {s.account_name for s in scopes}
    return StatusLine(scopes=scopes, documents=int(body.get("documents") or 0),
                      account_errors={a: e for a, e in account_errors.items() if a not in named},
                      scheduled=bool((body.get("schedule") or {}).get("running")))


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
        self._manual: dict | None = None  # the report of the last sync the tray ran (its account-level errors)
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
            item("Sync now", self._sync_now, enabled=lambda _: not (self.status.syncing or self.status.scheduled)),
            pystray.Menu.SEPARATOR,
            item(lambda _: self.status.text(), None, enabled=False),
            item(lambda _: self.status.errors_text() or "", None, enabled=False,
                 visible=lambda _: self.status.errors_text() is not None),
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
            fresh = status_from(self.client.status(), self._manual)
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
            self._manual = {"finished_at": datetime.now(timezone.utc).isoformat(), "errors": report.get("errors") or []}
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
