"""When to sync: full every ``full_every_s`` (default 6 h), incremental every ``incremental_every_s``
(default 15 min), decided from the last successful runs recorded in the status book. The tray app runs
:meth:`SyncScheduler.tick` on a timer; nothing here sleeps, so it is tested with a given clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from app.config import Schedules

Kind = Literal["full", "incremental"]


@dataclass
class SyncScheduler:
    schedules: Schedules
    last_full: datetime | None = None
    last_incremental: datetime | None = None

    def due(self, now: datetime | None = None) -> Kind | None:
        now = now or datetime.now(timezone.utc)
        if self.last_full is None or now - self.last_full >= timedelta(seconds=self.schedules.full_every_s):
            return "full"
        last = max(self.last_full, self.last_incremental or self.last_full)
        if now - last >= timedelta(seconds=self.schedules.incremental_every_s):
            return "incremental"
        return None

    def ran(self, kind: Kind, when: datetime | None = None) -> None:
        when = when or datetime.now(timezone.utc)
        if kind == "full":
            self.last_full = when
        self.last_incremental = when

    def tick(self, engine, now: datetime | None = None):
        """Run whatever is due on ``engine`` (a SyncEngine); returns the report or None."""
        kind = self.due(now)
        if kind is None:
            return None
        report = engine.run(full=(kind == "full"))
        self.ran(kind, now)
        return report
