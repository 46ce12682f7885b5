"""The context builder: from a prompt, the few resources of the local estate it is about, and the
user context; nothing else leaves the machine (no credentials, no other resources).

Resources named exactly are always sent (all of them: the same name in two accounts must reach the
planner so that it asks). Otherwise the best lookup hits that are close to the top one are sent, with
their match scores, and the planner decides whether that is certain enough. A request to list the
resources of a type ("list the databases in staging") sends every one the lookup's filters let through
(type, account, region, tags), up to MAX_LISTED: a listing that silently stopped at eight would be wrong.
"""

from __future__ import annotations

from agent.lexicon import lists_resources
from agent.protocol import AwsAccount, IdentifiedResource, PlanRequest, UserContext
from app.config import Config
from app.estate.lookup import LookupIndex
from app.estate.resource_store import ResourceStore

MAX_RESOURCES = 8
MAX_LISTED = 50
CLOSE_TO_TOP = 0.75


def identify(prompt: str, index: LookupIndex, store: ResourceStore, limit: int = MAX_RESOURCES) -> list[IdentifiedResource]:
    listing = lists_resources(prompt)
    hits = index.search(prompt, limit=MAX_LISTED if listing else 25, every_match=listing)
    if not hits:
        return []
    exact = [h for h in hits if h.components.get("exact")]
    if exact:
        chosen = exact + _beside_exact(index, exact, hits)
    elif listing:
        chosen, limit = hits, MAX_LISTED  # a listing is not cut at the usual few
    else:
        chosen = [h for h in hits if h.score >= CLOSE_TO_TOP * hits[0].score][:limit]
    docs = store.documents([h.id for h in chosen])
    return [docs[h.id].to_identified(match_score=h.score, why="; ".join(h.why)) for h in chosen if h.id in docs][:limit]


def _beside_exact(index: LookupIndex, exact: list, hits: list, most: int = 3) -> list:
    """Close hits of *another type* in the place (account, region) an exact name points at: in "redeploy
    the api service on staging-cluster" the exact name is the cluster, and the thing to act on is the
    service beside it. Hits of the exact names' own type are left out: "stop pg-instance-main1" is about
    that instance, not its look-alike neighbours."""
    def place(h) -> tuple[str, str]:
        return str(index.account_ids[h.row]), str(index.regions[h.row])

    types = {str(index.types[h.row]) for h in exact}
    places = {place(h) for h in exact}
    others = [h for h in hits if not h.components.get("exact") and str(index.types[h.row]) not in types]
    if not others:
        return []
    top = others[0].score
    return [h for h in others if place(h) in places and h.score >= CLOSE_TO_TOP * top][:most]


def user_context(config: Config, store_accounts: dict[str, str] | None = None) -> UserContext:
    """Account names, ids and profiles (never keys); ids come from the synced documents."""
    ids = store_accounts or {}
    accounts = [AwsAccount(name=a.name, profile=a.profile, regions=a.regions, account_id=a.account_id or ids.get(a.name))
                for a in config.effective_accounts()]
    default_region = next((a.regions[0] for a in config.effective_accounts() if a.regions), None)
    return UserContext(aws_accounts=accounts, default_region=default_region)


def build_request(prompt: str, index: LookupIndex, store: ResourceStore, config: Config) -> PlanRequest:
    names = {str(n): str(i) for n, i in zip(index.account_names, index.account_ids)}
    return PlanRequest(prompt=prompt, identified_resources=identify(prompt, index, store),
                       user_context=user_context(config, names))
