"""The app's own syncs: full every ``full_every_s`` (default 6 h), incremental every ``incremental_every_s``
(15 min), and the resource-change events queue drained every ``events_every_s`` (1 min) when config.yaml
names one (app.estate.events).

Why it runs in the endpoint's process, headless or desktop alike: that process owns the index, so it is the
one that can write it; the tray and the UI only show what it did (``state()``, served in ``/v1/status``).

Why a due sync is skipped, never queued: the endpoint runs one sync at a time and answers a second with 409
(SyncBusy). A scheduled sync that finds a manual one running is skipped and looked at again ``RETRY_S``
later; a manual sync that finds a scheduled one running gets the 409. Nobody waits behind anybody.

Why plans never wait for a sync: the sync runs on this scheduler's own thread, not on the endpoint's
request threads, and it holds only the sync lock, which planning never takes.

Why jitter: the clients of a team list the same AWS accounts; a random 0-10 % added to each interval keeps
them from all listing at the same minute and tripping AWS's rate limits together.

Why schedules are read on every wake-up (at most every ``POLL_S``): the settings page and the CLI write
config.yaml while the app runs, and a changed interval must apply without a restart.

When the last full and incremental syncs happened is kept in ``$CLOUDOPS_HOME/schedule.json`` so that a
restart does not mean a full sync; a sync the app did not start (``cloudops sync``, the UI's Sync now) is
seen in the status book (newest ``last_attempt``) and counts as an incremental one.

Nothing here reads the wall clock or sleeps by itself: ``clock`` and ``wait`` are given, so tests drive days
of schedule in milliseconds.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

from app.config import Config, Schedules, env_seconds

log = logging.getLogger("cloudops.scheduler")

Kind = Literal["full", "incremental", "events"]
JITTER = 0.10  # up to 10 % added to every interval
POLL_S = 15.0  # the longest wait between looks at the clock and at config.yaml
RETRY_S = 60.0  # after a skip (another sync was running), look again this much later
FIRST_DELAY_S = 20.0  # after start: the app comes up (tray, first window) before any sync starts


class SyncBusy(RuntimeError):
    """A sync was asked for while another one runs (the endpoint answers 409; the scheduler skips)."""


class SyncTarget(Protocol):
    """What the scheduler drives: the endpoint's LocalService (app.interfaces.endpoint) implements it."""

    def current_config(self) -> Config: ...

    def sync(self, full: bool = False) -> dict: ...

    def sync_events(self) -> dict: ...

    def scope_statuses(self) -> list: ...


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class SyncRun:
    """One run the scheduler started (or skipped), as the tray and ``/v1/status`` show it."""

    kind: Kind
    started_at: datetime
    finished_at: datetime | None = None
    outcome: Literal["running", "done", "skipped", "failed"] = "running"
    scopes: int = 0
    failed: int = 0
    errors: list[dict] = field(default_factory=list)  # the sync report's: {scope, account, region?, service?, error}
    note: str | None = None  # why it was skipped, or why it failed as a whole

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


class ScheduleBook:
    """When the last full and incremental syncs ran, in a small JSON file (0600) so restarts keep it.
    A missing or damaged file is an empty book: the status book then stands in (see SyncScheduler.last)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.last: dict[str, datetime] = {}
        if path is None:
            return
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            self.last = {k: _utc(datetime.fromisoformat(v)) for k, v in raw.items()
                         if k in ("full", "incremental") and isinstance(v, str)}
        except (OSError, ValueError, TypeError, AttributeError):
            self.last = {}

    def ran(self, kind: str, when: datetime) -> None:
        self.last[kind] = when
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({k: v.isoformat() for k, v in self.last.items()}, handle)
            os.replace(tmp, self.path)
        except OSError as exc:  # a read-only home: the schedule still runs, from memory
            log.warning("could not write %s: %s", self.path, exc)


class SyncScheduler:
    """Decides what is due, runs it on its own thread, and says what it did."""

    def __init__(self, target: SyncTarget, *, book: ScheduleBook | None = None,
                 clock: Callable[[], datetime] = utc_now, wait: Callable[[float], bool] | None = None,
                 rng: random.Random | None = None, first_delay_s: float | None = None):
        """``wait(seconds)`` returns True when the scheduler was stopped meanwhile (default: a stop event's
        wait); ``first_delay_s`` defaults to CLOUDOPS_SCHEDULE_DELAY_S or FIRST_DELAY_S."""
        self.target = target
        self.book = book or ScheduleBook(None)
        self.clock = clock
        self._stop = threading.Event()
        self.wait = wait or self._stop.wait
        self.rng = rng or random.Random()
        self._jitter = {kind: self.rng.random() * JITTER for kind in ("full", "incremental", "events")}
        delay = env_seconds("CLOUDOPS_SCHEDULE_DELAY_S", FIRST_DELAY_S) if first_delay_s is None else first_delay_s
        self.not_before = clock() + timedelta(seconds=delay)
        self.last_events: datetime | None = None
        self._ran_here: dict[str, datetime] = {}  # what this process ran (the book may predate the index)
        self._deferred: list[Callable[[], object]] = []  # work waiting for the running sync to end
        self._deferred_lock = threading.Lock()
        self.running: SyncRun | None = None
        # What the tray shows: the last full or incremental run (its account-level errors cover every account),
        # and apart from it the last events drain that synced or failed (an empty one is not news).
        self.last_run: SyncRun | None = None
        self.last_events_run: SyncRun | None = None
        self._thread: threading.Thread | None = None

    # ---- what is due ----------------------------------------------------------------------------

    def last(self) -> tuple[datetime | None, datetime | None]:
        """(last full, last incremental). The book says what this scheduler ran; the status book says when
        anything last synced (a manual sync counts as incremental), and stands in for the last full when
        the book has none and every scope has synced at least once (e.g. right after ``cloudops demo``)."""
        statuses = self.target.scope_statuses()
        attempts = [_utc(s.last_attempt) for s in statuses if s.last_attempt]
        successes = [_utc(s.last_success) for s in statuses]
        full, incremental = self.book.last.get("full"), self.book.last.get("incremental")
        if not statuses:
            # Nothing in the index (a first start, a deleted index): only this process's own runs count, so
            # a sync that could not write anything (an expired login) is tried again at the next interval.
            full, incremental = self._ran_here.get("full"), self._ran_here.get("incremental")
        elif full is None and all(successes):
            full = min(successes)
        incremental = max([t for t in (full, incremental, *attempts) if t is not None], default=None)
        return full, incremental

    def _interval(self, kind: Kind, schedules: Schedules) -> timedelta:
        seconds = {"full": schedules.full_every_s, "incremental": schedules.incremental_every_s,
                   "events": schedules.events_every_s}[kind]
        return timedelta(seconds=seconds * (1 + self._jitter[kind]))

    def due_times(self, now: datetime | None = None) -> dict[Kind, datetime]:
        """When each kind is due next (never before ``not_before``); events only when a queue is set."""
        now = now or self.clock()
        config = self.target.current_config()
        schedules = config.schedules
        full, incremental = self.last()
        times: dict[Kind, datetime] = {
            "full": full + self._interval("full", schedules) if full else now,
            "incremental": (incremental + self._interval("incremental", schedules)) if incremental else now,
        }
        if config.events is not None:
            times["events"] = self.last_events + self._interval("events", schedules) if self.last_events else now
        return {kind: max(at, self.not_before) for kind, at in times.items()}

    def due(self, now: datetime | None = None) -> Kind | None:
        """What should run at ``now``: full before incremental (a full sync is one too), then events."""
        now = now or self.clock()
        times = self.due_times(now)
        return next((kind for kind in ("full", "incremental", "events") if kind in times and times[kind] <= now),
                    None)

    # ---- running ------------------------------------------------------------------------------------

    def run_once(self, kind: Kind) -> SyncRun:
        """Run ``kind`` now through the target; a sync already running makes this a skip."""
        run = SyncRun(kind, started_at=self.clock())
        self.running = run
        try:
            report = self.target.sync_events() if kind == "events" else self.target.sync(full=kind == "full")
        except SyncBusy as exc:
            run.outcome, run.note = "skipped", str(exc)
            self.not_before = self.clock() + timedelta(seconds=RETRY_S)
        except Exception as exc:  # noqa: BLE001 - a broken run is reported and retried on schedule
            from app.awsclient import describe_error

            log.warning("scheduled %s sync failed: %s", kind, exc, exc_info=True)
            run.outcome, run.note = "failed", describe_error(exc)
        else:
            run.scopes = len(report.get("scopes") or [])
            run.errors = list(report.get("errors") or [])
            run.failed = sum(1 for s in report.get("scopes") or [] if not s.get("ok", True))
            run.outcome = "failed" if run.errors and run.failed == run.scopes else "done"
        finally:
            self.running = None
        run.finished_at = self.clock()
        if run.outcome != "skipped":
            self._jitter[kind] = self.rng.random() * JITTER
            if kind == "events":
                self.last_events = run.started_at
            else:
                for done in ("full", "incremental") if kind == "full" else ("incremental",):
                    self.book.ran(done, run.started_at)
                    self._ran_here[done] = run.started_at
        if run.outcome != "skipped" and kind != "events":
            self.last_run = run
        elif run.outcome == "failed" or (kind == "events" and run.scopes):
            self.last_events_run = run
        self.run_deferred()
        return run

    def after_current_sync(self, work: Callable[[], object]) -> None:
        """Run ``work`` on the scheduler's thread once the sync running now has ended: right after it when it
        is the scheduler's own, else at the next wake-up (at most POLL_S later). Why: re-reading the scopes a
        run touched must not keep the run's answer waiting behind a sync that may take minutes."""
        with self._deferred_lock:
            self._deferred.append(work)

    def run_deferred(self) -> None:
        """The work handed to after_current_sync so far (work handed over meanwhile waits for the next call)."""
        with self._deferred_lock:
            work, self._deferred = self._deferred, []
        for item in work:
            try:
                item()
            except Exception:  # noqa: BLE001 - a refresh that fails leaves the index to the next sync
                log.warning("work deferred until the sync ended failed", exc_info=True)

    def tick(self, now: datetime | None = None) -> SyncRun | None:
        """Run whatever is due at ``now``; None when nothing is."""
        kind = self.due(now)
        return self.run_once(kind) if kind else None

    def run_forever(self) -> None:
        """The scheduler's loop: run what is due, else wait until the next due time (at most POLL_S, so a
        changed schedule or a stop is seen soon). Returns when stopped."""
        while not self._stop.is_set():
            try:
                self.run_deferred()
                if self.tick() is not None:
                    continue
                now = self.clock()
                wake = min(self.due_times(now).values(), default=now + timedelta(seconds=POLL_S))
                delay = min(POLL_S, max(0.0, (wake - now).total_seconds()))
            except Exception:  # noqa: BLE001 - e.g. config or the status book unreadable for a moment
                log.warning("sync scheduler: could not decide what is due", exc_info=True)
                delay = POLL_S
            if self.wait(delay):
                return

    def start(self) -> "SyncScheduler":
        self._thread = threading.Thread(target=self.run_forever, name="sync-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the loop to end and wait up to ``timeout`` s for it. False when a sync is still running then
        (it cannot be interrupted mid-scope; the index survives a process exit mid-sync)."""
        self._stop.set()
        if self._thread is None or self._thread is threading.current_thread():
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("sync scheduler: a %s sync was still running at stop", self.running and self.running.kind)
            return False
        return True

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # ---- what the tray sees -----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """For ``/v1/status``: the run in progress, the last one, and what comes next."""
        running, last, events, upcoming = self.running, self.last_run, self.last_events_run, None
        try:
            times = {} if running else self.due_times()
            kind = min(times, key=times.get) if times else None
            upcoming = {"kind": kind, "at": times[kind].isoformat()} if kind else None
        except Exception:  # noqa: BLE001 - the state is informative; never fail /v1/status for it
            log.debug("sync scheduler: no next time", exc_info=True)
        return {"running": running.as_json() if running else None, "last": last.as_json() if last else None,
                "last_events": events.as_json() if events else None, "next": upcoming}


def scheduler_for(service: SyncTarget, home: Path) -> SyncScheduler:
    """The app's scheduler over its LocalService, its book in ``home/schedule.json``."""
    return SyncScheduler(service, book=ScheduleBook(home / "schedule.json"))
