"""The context builder: from a prompt, the few resources of the local estate it is about, and the
user context; nothing else leaves the machine (no credentials, no other resources).

Resources named exactly are always sent (all of them: the same name in two accounts must reach the
planner so that it asks), even where a hint in the prompt points elsewhere: "stop pg-instance-main1 in
dev" sends pg-instance-main1 from production, so that the planner can say where it is instead of acting on
whatever the hint's filter let through. Otherwise the best lookup hits that are close to the top one are
sent, with their match scores, and the planner decides whether that is certain enough. A request to list
the resources of a type ("list the databases in staging"), a question about a set of them ("which
instances are stopped?") and a request for all of them send every one the lookup's filters let through
(type, account, region, tags, state), up to MAX_LISTED: a listing that silently stopped at eight would be
wrong. A tag said in words ("for app billing") filters; when nothing carries it, the prompt is looked up
without it, and the planner sees that no resource carries the tag.
"""

from __future__ import annotations

import re

from agent.lexicon import lists_resources
from agent.mentions import part_words, says_key
from agent.prompt import ParsedPrompt, parse_prompt
from agent.text import last_segment, normalise
from agent.protocol import AwsAccount, IdentifiedResource, PlanRequest, UserContext
from app.config import Config
from app.estate.lookup import LookupIndex, QueryError
from app.estate.resource_store import ResourceStore

MAX_RESOURCES = 8
MAX_LISTED = 50
CLOSE_TO_TOP = 0.75


def index_prompt(prompt: str, index: LookupIndex) -> ParsedPrompt:
    """The prompt parsed with what the index knows: its accounts, its regions, its resources' names."""
    accounts = {str(n): str(i) for n, i in zip(index.account_names, index.account_ids)}
    return parse_prompt(prompt, accounts=accounts, regions=[str(r) for r in index._codes["region"].values],
                        is_name=lambda word: bool(index.exact.get(word)))


def wants_every_match(prompt: str, parsed: ParsedPrompt) -> bool:
    """A listing, a question about a set of resources, or "all <things>" with no name: every resource the
    filters let through is relevant, not the few best."""
    return (lists_resources(prompt) or parsed.asks_for_a_set or parsed.everything
            or (parsed.every and bool(parsed.type_nouns) and not parsed.names))


def identify(prompt: str, index: LookupIndex, store: ResourceStore, limit: int = MAX_RESOURCES, *,
             parsed: ParsedPrompt | None = None) -> list[IdentifiedResource]:
    parsed = parsed or index_prompt(prompt, index)
    listing = wants_every_match(prompt, parsed)
    try:
        hits = index.search(prompt, limit=MAX_LISTED if listing else 25, every_match=listing)
    except QueryError:
        # A request is not a search: "(http tokens = required)" is a value in it, not a tag expression the
        # operator meant as a filter. Its words still find what it names.
        hits = index.search(_without_tag_syntax(prompt) or prompt, limit=MAX_LISTED if listing else 25,
                            every_match=listing)
    if not hits and parsed.tag_phrases:
        hits = index.search(parsed.without([t.span for t in parsed.tag_phrases]) or prompt,
                            limit=MAX_LISTED if listing else 25, every_match=listing)
    exact = [h for h in hits if h.components.get("exact")]
    if exact:
        chosen = exact + _beside_exact(index, exact, hits)
    elif listing:
        chosen, limit = hits, MAX_LISTED  # a listing is not cut at the usual few
    else:
        chosen = [h for h in hits if h.score >= CLOSE_TO_TOP * hits[0].score][:limit] if hits else []
    ids = [h.id for h in chosen]
    named = [i for i in _named_ids(index, parsed) if i not in ids]
    docs = store.documents(ids + named)
    related = [i for i in _parts_asked_for(index, parsed, docs) if i not in ids and i not in named]
    if related:  # "purge the dlq of payments-queue": the queue's dead-letter queue is sent too
        docs.update(store.documents(related))
        named += related
    found = [docs[h.id].to_identified(match_score=h.score, why="; ".join(h.why)) for h in chosen if h.id in docs]
    # Named exactly, but hidden by a hint's filter: sent so that the planner says where it is.
    elsewhere = [docs[i].to_identified(match_score=1.0, why="exact name (outside the place the prompt says)")
                 for i in named if i in docs]
    return (elsewhere + found)[:max(limit, len(elsewhere))]


def _without_tag_syntax(prompt: str) -> str:
    """The prompt with the characters that make a tag expression (= ! parentheses) turned into spaces."""
    return re.sub(r"\s+", " ", re.sub(r"[=!()]", " ", prompt)).strip()


def _named_ids(index: LookupIndex, parsed: ParsedPrompt) -> list[str]:
    """Document ids of the resources whose exact name or id the prompt types, wherever they are."""
    out: list[str] = []
    for span in parsed.names:
        for row in index.exact.get(span.text) or []:
            doc_id = str(index.ids[row])
            if doc_id not in out:
                out.append(doc_id)
    return out[:MAX_RESOURCES]


def _parts_asked_for(index: LookupIndex, parsed: ParsedPrompt, docs: dict) -> list[str]:
    """Ids of the resources related to a resource named as "<something> of <name>" or "<name>'s
    <something>" (its relations: a queue's dead-letter queue, a database's read replicas), so that the
    planner can act on the part asked for (agent.mentions.named_part) instead of on the named resource."""
    out: list[str] = []
    for span in parsed.names:
        said_around = part_words(parsed.text, span.start, span.end)
        if said_around is None:
            continue
        for row in index.exact.get(span.text) or []:
            doc = docs.get(str(index.ids[row]))
            for key, values in (doc.relations.items() if doc is not None else []):
                if says_key(said_around.words, key, from_end=said_around.before) is None:
                    continue
                for value in values[:MAX_RESOURCES]:
                    for written in (value, last_segment(value)):
                        for related in index.exact.get(normalise(written)) or []:
                            if str(index.ids[related]) not in out:
                                out.append(str(index.ids[related]))
    return out[:MAX_RESOURCES]


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
