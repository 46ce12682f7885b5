"""The estate explorer's numbers: resource counts by account, region, service and type, and a filtered
listing, straight from the store's Qdrant Edge shard. Counted by facets over keyword payload indexes
(one ``group`` field per point: account, region, service, type), never by loading documents, so the
explorer stays cheap on a large estate and always agrees with what sync wrote."""

from __future__ import annotations

from dataclasses import dataclass

from app.estate.resource_store import ResourceStore

MAX_LISTED_SCAN = 20000  # matches read to sort the listing by name


@dataclass(frozen=True)
class ExplorerFilter:
    """Every field narrows the result; None means any. ``account`` matches an id or a name."""

    account: str | None = None
    region: str | None = None
    service: str | None = None
    resource_type: str | None = None
    state: str | None = None

    def edge_filter(self):
        """The filter as an Edge filter over the shard's payload indexes (None: everything)."""
        from qdrant_edge import FieldCondition, Filter, MatchValue

        must: list = []
        if self.account:
            must.append(Filter(should=[FieldCondition(key="account_id", match=MatchValue(self.account)),
                                       FieldCondition(key="account_name", match=MatchValue(self.account))]))
        for key, value in (("region", self.region), ("service", self.service),
                           ("resource_type", self.resource_type)):
            if value:
                must.append(FieldCondition(key=key, match=MatchValue(value)))
        if self.state:
            must.append(FieldCondition(key="state_low", match=MatchValue(self.state.lower())))
        return Filter(must=must) if must else None


def explore(store: ResourceStore, flt: ExplorerFilter, limit: int = 200) -> dict:
    """Counts per (account, region, service, type) for the filter, the facet values of the whole
    estate (what the filter menus offer), and up to ``limit`` matching resources, sorted by name."""
    condition = flt.edge_filter()
    groups = []
    for value, count in store.facet("group", condition):
        account_id, account_name, region, service, resource_type = str(value).split("|")
        groups.append({"account_id": account_id, "account_name": account_name, "region": region,
                       "service": service, "resource_type": resource_type, "count": count})
    groups.sort(key=lambda g: (g["account_name"], g["region"], g["service"], g["resource_type"]))
    everything = [str(value).split("|") for value, _ in store.facet("group")]
    facets = {
        "accounts": [{"account_id": a, "account_name": n}
                     for a, n in sorted({(g[0], g[1]) for g in everything}, key=lambda x: x[1])],
        "regions": sorted({g[2] for g in everything}),
        "services": sorted({g[3] for g in everything}),
        "resource_types": sorted({g[4] for g in everything}),
        "states": sorted(str(value) for value, _ in store.facet("state_low") if value),
    }
    fields = ["id", "name", "name_low", "resource_id", "resource_type", "account_id", "account_name", "region",
              "state", "service"]
    rows = []
    for _, payload in store._scroll(condition, fields):
        rows.append(payload)
        if len(rows) >= MAX_LISTED_SCAN:
            break
    rows.sort(key=lambda p: (p.get("name") or "", p.get("id") or ""))
    resources = [{"id": p.get("id"), "name": p.get("name"), "resource_id": p.get("resource_id"),
                  "resource_type": p.get("resource_type"), "account_id": p.get("account_id"),
                  "account_name": p.get("account_name"), "region": p.get("region"), "state": p.get("state"),
                  "service": p.get("service")} for p in rows[:limit]]
    return {"total": sum(g["count"] for g in groups), "groups": groups, "facets": facets, "resources": resources}
