"""How old the client's knowledge of a resource is, per sync scope (account x region x service).

Why per scope and not the newest sync: a sync in which 70 of 72 scopes failed still has two fresh scopes,
and the resources of the other 70 are as old as their last *successful* sync. A plan on a resource whose
scope failed its last sync, or was last synced longer ago than the full-sync interval, may act on a
resource that changed or is gone: the operator is told, and approving it takes an acknowledgement.
"""

from __future__ import annotations

from datetime import datetime, timezone

from agent.protocol import RESOURCE_TYPES, IdentifiedResource
from app.estate.collectors import GLOBAL_SERVICES
from app.estate.sync_status import ScopeStatus, StatusBook


def _utc(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)


def age_words(seconds: float) -> str:
    """'just now', '4 min', '3 h', '2 days'."""
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


class Freshness:
    """The sync status of every scope, read once, answering per resource."""

    def __init__(self, scopes: list[ScopeStatus], max_age_s: float, now: datetime | None = None):
        self.by_key = {(s.account_id, s.region, s.service): s for s in scopes}
        self.by_name = {(s.account_name, s.region, s.service): s for s in scopes}
        self.max_age_s = max_age_s
        self.now = now or datetime.now(timezone.utc)

    @classmethod
    def of_store(cls, store, max_age_s: float) -> "Freshness":
        return cls(StatusBook(store.engine).all(), max_age_s)

    def scope(self, resource: IdentifiedResource) -> ScopeStatus | None:
        service = RESOURCE_TYPES.get(resource.resource_type, "")
        region = "global" if service in GLOBAL_SERVICES else (resource.region or "")
        return self.by_key.get((resource.account_id or "", region, service)) or \
            self.by_name.get((resource.account_name or "", region, service))

    def synced_at(self, resource: IdentifiedResource) -> datetime | None:
        status = self.scope(resource)
        return _utc(status.last_success) if status else None

    @staticmethod
    def failed(status: ScopeStatus) -> bool:
        """Whether the scope's last sync failed: an error and no success, or an error after the last success."""
        success, error_at = _utc(status.last_success), _utc(status.last_error_at)
        return bool(status.last_error) and (success is None or (error_at is not None and error_at > success))

    def age_s(self, status: ScopeStatus) -> float | None:
        """Seconds since the scope's last successful sync (how old its data is); None when it never synced."""
        success = _utc(status.last_success)
        return None if success is None else max(0.0, (self.now - success).total_seconds())

    def why_stale(self, resource: IdentifiedResource) -> str | None:
        """One sentence when the resource's data may be out of date, else None."""
        status = self.scope(resource)
        name = resource.display_name
        if status is None:
            return None  # not synced by this client (e.g. a resource file): nothing to compare with
        success = _utc(status.last_success)
        where = f"{status.account_name}/{status.region}/{status.service}"
        if self.failed(status):
            since = f"last good sync {age_words((self.now - success).total_seconds())} ago" if success else "never synced"
            return f"{name}: the last sync of {where} failed ({since})"
        if success is not None and (self.now - success).total_seconds() > self.max_age_s:
            return f"{name} was last synced {age_words((self.now - success).total_seconds())} ago, " \
                   "longer than the full-sync interval"
        return None

    def stamp(self, resources: list[IdentifiedResource]) -> list[IdentifiedResource]:
        """The resources with ``synced_at`` filled from their scope where they lack it."""
        return [r if r.synced_at is not None or self.synced_at(r) is None
                else r.model_copy(update={"synced_at": self.synced_at(r)}) for r in resources]
