"""Questions about the estate, answered from the local index at once: "is the bastion running?", "which
instances are stopped?", "what databases do we have in production?", "how many lambdas run python3.9?",
"what engine version is orders-db on?".

Why on the client: the index is the client's (the agent server never sees the estate), and it answers in
milliseconds what a describe call answers in seconds. The answer says how old its data is (the oldest
``synced_at`` of the resources it is about); the plan that comes with it reads the same resources live,
and never changes anything (agent.questions). Only what the index holds is answered: a question about
something it does not keep (a topic's subscribers, a bucket's versioning) gets no answer here, and the
read-only step answers it.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timezone

from agent.facts import TYPE_NOUNS
from agent.lexicon import ENGINE_WORDS, plural_noun
from agent.mentions import find_mentions, unmatched_names
from agent.prompt import ParsedPrompt
from agent.protocol import Answer, IdentifiedResource
from agent.text import last_segment, stem
from app.estate.context import identify, index_prompt
from app.estate.lookup import LookupIndex, QueryError
from app.estate.resource_store import ResourceStore

MAX_COUNTED = 2000  # a count reads at most this many documents
# The words a question about a set is built of, besides what its filters read.
_CONNECTIVES = frozenset("""what which how many much number count of the a an do does did we you i they our my have has
    got are is was were there any some all every each in on at for from with by run runs running use uses using exist
    exists existing currently current right now today still left total altogether overall list show me tell give
    please pls hey hi ok so that those these them it its them tagged belong belongs belonging resources things
    lying around sitting""".split())
MAX_NAMED_IN_TEXT = 12
# Words that say "up" or "down" of a state, and the states that are each.
_UP_WORDS = {"running", "up", "online", "alive", "available", "started", "active", "healthy"}
_DOWN_WORDS = {"stopped", "down", "offline", "off", "dead", "idle"}
_UP_STATES = {"running", "available", "active", "in-use", "create_complete", "update_complete", "inservice"}
_DOWN_STATES = {"stopped", "stopping", "shutting-down", "terminated", "inactive", "failed"}
# Words in a question that point at an attribute under another name.
_ATTRIBUTE_WORDS = {"big": "size", "large": "size", "deep": "messages", "depth": "messages", "ip": "ip",
                    "k8s": "version", "kubernetes": "version", "class": "class", "ram": "memory", "own": "owner",
                    "owned": "owner", "whose": "owner", "dlq": "dead", "replica": "replica"}
# Parts of fact names that say a unit, a kind of number or a yes/no, not what the fact is.
_UNIT_PARTS = {"mb", "gb", "s", "bytes", "count", "id", "approximate"}
# "where is X?", "which region is X in?": the answer is its account and region.
_WHERE_WORDS = frozenset({"where", "region", "regions", "account", "located"})
# "who owns X?": tags that name an owner, in the order they answer.
_OWNER_TAGS = ("owner", "team", "contact", "owned-by", "owned_by")
_STATE_QUESTION = re.compile(r"(?<![\w-])(?:state|status|up|down|running|stopped|available|online|offline)(?![\w-])")


def answer_question(prompt: str, index: LookupIndex, store: ResourceStore, *, now: datetime | None = None,
                    freshness=None) -> Answer | None:
    """The answer to ``prompt`` from the local index, or None when it is no question or the index does not
    hold what it asks. ``freshness`` (app.estate.freshness.Freshness) dates resources whose document does not
    carry ``synced_at``; without either, the answer says the sync time is unknown."""
    parsed = index_prompt(prompt, index)
    if parsed.question is None:
        return None
    now = now or datetime.now(timezone.utc)
    freshness = freshness or _scope_freshness(store)
    try:
        if parsed.asks_for_a_set:
            return _about_a_set(prompt, parsed, index, store, now, freshness)
        return _about_named(prompt, parsed, index, store, now, freshness)
    except QueryError:
        return None


# -- questions about a set of resources --------------------------------------------------------------

def _about_a_set(prompt: str, parsed: ParsedPrompt, index: LookupIndex, store: ResourceStore, now: datetime,
                 freshness) -> Answer | None:
    hits = index.search(prompt, limit=MAX_COUNTED, every_match=True)
    docs = store.documents([h.id for h in hits])
    resources = [docs[h.id].to_identified() for h in hits if h.id in docs]
    types = parsed.head_types
    if types:
        resources = [r for r in resources if r.resource_type in types]
    if parsed.state:
        resources = [r for r in resources if (r.current_state or "").lower() == parsed.state]
    if parsed.engines:
        resources = [r for r in resources if _engine(r) and any(e in _engine(r) for e in parsed.engines)]
    noun = _noun(types, resources)
    values, missing = _value_filter(parsed, resources)
    if _unread_words(parsed, resources):
        return None  # "which buckets are public?": the index cannot tell, and all buckets are not the answer
    subject = values if values is not None else resources
    said = " ".join(_where_words(parsed))
    state = f"{parsed.state} " if parsed.state else ""
    if missing:
        key, seen = missing
        spread = ", ".join(f"{value} ({n})" for value, n in seen.most_common(6))
        text = (f"No {state}{noun}{' ' + said if said else ''} has {_key_words(key)} {_said_values(parsed, resources)}; "
                f"{_key_words(key)} in use: {spread}.")
    elif not subject:
        text = f"No {state}{noun}{' ' + said if said else ''} in the index."
    else:
        counted = f"{len(subject)} {state}{noun if len(subject) == 1 else _plural(noun)}"
        text = f"{counted}{' ' + said if said else ''}"
        if values is not None:
            text += f" with {_said_values(parsed, resources)}"
        text += ": " + _listing(subject) + "."
    return _answer(text, subject or resources, now, freshness)


def _value_filter(parsed: ParsedPrompt, resources: list[IdentifiedResource]
                  ) -> tuple[list[IdentifiedResource] | None, tuple[str, Counter] | None]:
    """"how many lambdas run python3.9?": words of the question that are an attribute's value select the
    resources that have it. A word shaped like values of one attribute that none has ("python3.9" where
    every runtime is python3.12) selects nothing, and the caller says which values there are."""
    words = [w for w in re.findall(r"[a-z0-9][a-z0-9._-]*[a-z0-9]", parsed.without(parsed.hint_spans())) if len(w) >= 3]
    chosen: list[IdentifiedResource] | None = None
    for word in words:
        having = [r for r in resources if any(str(v).lower() == word for v in r.attributes.values()
                                              if isinstance(v, str | int | float) and not isinstance(v, bool))]
        if having:
            chosen = [r for r in (chosen if chosen is not None else resources) if r in having]
            continue
        family = re.match(r"[a-z]{3,}", word)
        if family and re.search(r"\d", word):
            for key in sorted({k for r in resources for k in r.attributes}):
                seen = Counter(str(r.attributes[key]) for r in resources if key in r.attributes
                               and str(r.attributes[key]).lower().startswith(family.group(0)))
                if seen:
                    return [], (key, seen)
    return chosen, None


def _unread_words(parsed: ParsedPrompt, resources: list[IdentifiedResource]) -> list[str]:
    """Words of a question about a set that none of its filters read ("public" in "which buckets are
    public?"): with any, the set the filters give is not the answer to the question."""
    understood = [*parsed.hint_spans(), *(n.span for n in parsed.type_nouns), *(s for _, s in parsed.states),
                  *(s for _, s in parsed.environments), *(t.span for t in parsed.tag_phrases), *parsed.quoted_spans]
    values = {str(v).lower() for r in resources for v in r.attributes.values() if isinstance(v, str | int | float)}
    words = re.findall(r"[a-z0-9][a-z0-9._=-]*[a-z0-9]|[a-z0-9]", parsed.without(understood))
    return [w for w in words if w not in _CONNECTIVES and w not in values and "=" not in w
            and w not in ENGINE_WORDS and not re.match(r"[a-z]{3,}\d", w)]


def _said_values(parsed: ParsedPrompt, resources: list[IdentifiedResource]) -> str:
    values = {str(v).lower() for r in resources for v in r.attributes.values() if isinstance(v, str)}
    words = [w for w in re.findall(r"[a-z0-9][a-z0-9._-]*[a-z0-9]", parsed.text)
             if w in values or (re.match(r"[a-z]{3,}\d", w) and not parsed.names)]
    return " ".join(dict.fromkeys(words)) or "that value"


# -- questions about named resources -------------------------------------------------------------------

def _about_named(prompt: str, parsed: ParsedPrompt, index: LookupIndex, store: ResourceStore, now: datetime,
                 freshness) -> Answer | None:
    identified = identify(prompt, index, store, parsed=parsed)
    mentions = find_mentions(prompt, identified, parsed)
    named = list({r.arn or r.resource_id: r for r in (m.resource for m in mentions)}.values())
    missing = unmatched_names(parsed, mentions)
    if not named:
        if missing:
            return Answer(text=f"Nothing named {missing[0]} is in the index.", resources=[], as_of=None)
        return None
    types = parsed.head_types
    if types and any(r.resource_type in types for r in named):
        named = [r for r in named if r.resource_type in types]
    here = _in_places(parsed, named)
    if parsed.places and not here:
        places = ", ".join(dict.fromkeys(_place(r) for r in named))
        text = f"{named[0].display_name} is not in {' / '.join(_where_words(parsed, bare=True))}; it is in {places}."
        return _answer(text, named, now, freshness)
    subject = here or named
    if types and not any(r.resource_type in types for r in subject):
        # "which ecs services run in prod-cluster?": the named resource's members of the type asked for.
        return _members(parsed, subject, types, store, now, freshness)
    keys = _asked_attributes(parsed, subject)
    if keys:
        parts = []
        for r in subject:
            facts = _facts(r)
            values = [_attribute_text(k, facts[k]) for k in keys if k in facts]
            if values:
                parts.append(f"{r.display_name} ({_place(r)}): " + ", ".join(values))
        if parts:
            return _answer("; ".join(parts) + ".", subject, now, freshness)
    words = set(re.findall(r"[a-z]+", parsed.without([*parsed.names, *parsed.hint_spans()])))
    if words & _WHERE_WORDS:
        return _answer("; ".join(f"{r.display_name} is in {_place(r)}" for r in subject) + ".", subject, now,
                       freshness)
    asks_state = parsed.states or _STATE_QUESTION.search(parsed.text)
    if not asks_state or all(r.current_state is None for r in subject):
        return None
    return _answer(_state_text(parsed, subject), subject, now, freshness)


def _members(parsed: ParsedPrompt, owners: list[IdentifiedResource], types: set[str], store: ResourceStore,
             now: datetime, freshness) -> Answer | None:
    """Resources of ``types`` that belong to one of ``owners`` (the services of a cluster, the instances of a
    group), read from the index of the owners' accounts and regions."""
    from qdrant_edge import FieldCondition, Filter, MatchAny

    from agent.targets import belongs_to

    flt = Filter(must=[FieldCondition(key="resource_type", match=MatchAny(any=sorted(types))),
                       FieldCondition(key="account_id", match=MatchAny(any=sorted({r.account_id for r in owners
                                                                                   if r.account_id})))])
    candidates = [d.to_identified() for d in store.all_documents(flt)]
    members = [m for m in candidates if any(m.region == o.region and belongs_to(m, o) for o in owners)]
    noun = _noun(types, members)
    owner_names = " / ".join(dict.fromkeys(o.display_name for o in owners))
    if not members:
        return _answer(f"No {_plural(noun)} of {owner_names} in the index.", owners, now, freshness)
    count = f"{len(members)} {noun if len(members) == 1 else _plural(noun)}"
    return _answer(f"{count} in {owner_names}: {_listing(members)}.", members + owners, now, freshness)


def _facts(resource: IdentifiedResource) -> dict[str, object]:
    """What the index knows of one resource, by name: its attributes, constraints (deletion_protection),
    relations (read_replicas) and tags."""
    facts: dict[str, object] = {}
    facts.update({k: v for k, v in resource.tags.items() if k})
    facts.update(resource.relations)
    facts.update(resource.constraints)
    facts.update(resource.attributes)
    return facts


def _state_text(parsed: ParsedPrompt, subject: list[IdentifiedResource]) -> str:
    states = [f"{r.display_name} ({_place(r)}) is {r.current_state or 'in an unknown state'}" for r in subject]
    words = set(re.findall(r"[a-z]+", parsed.text))
    wanted_up, wanted_down = words & _UP_WORDS, words & _DOWN_WORDS
    if parsed.question is not None and parsed.question.kind == "yes_no" and (wanted_up or wanted_down):
        up = [(r.current_state or "").lower() in _UP_STATES for r in subject]
        hits = up if wanted_up else [not u for u in up]
        verdict = "Yes" if all(hits) else "No" if not any(hits) else "Partly"
        return f"{verdict}: " + "; ".join(states) + "."
    return "; ".join(states) + "."


def _asked_attributes(parsed: ParsedPrompt, subject: list[IdentifiedResource]) -> list[str]:
    """The attributes the question names: "engine version" -> engine_version, "memory and timeout" ->
    memory_mb, timeout_s; the key whose words the question holds most completely wins."""
    # The question's own words, not those of the names and places in it ("platform-prod" says no "platform").
    text = parsed.without([*parsed.names, *parsed.hint_spans()])
    words = {stem(w) for w in re.findall(r"[a-z0-9]+", text)}
    words |= {_ATTRIBUTE_WORDS[w] for w in list(words) if w in _ATTRIBUTE_WORDS}
    facts = [_facts(r) for r in subject]
    if "owner" in words:  # "who owns X?": the first owner-like tag it carries
        owner = next((t for t in _OWNER_TAGS if any(t in f for f in facts)), None)
        if owner:
            words.add(owner)
    scored: dict[str, tuple[int, float]] = {}
    for key in {k for f in facts for k in f}:
        parts = [stem(p) for p in key.split("_") if p not in _UNIT_PARTS] or [stem(key)]
        found = [p for p in parts if p in words]
        if found:
            scored[key] = (len(found), len(found) / len(parts))
    if not scored:
        return []
    best = max(scored.values())
    return sorted(k for k, s in scored.items() if s == best or (s[1] == 1.0 and s[0] >= best[0]))


# -- wording --------------------------------------------------------------------------------------------

def _answer(text: str, resources: list[IdentifiedResource], now: datetime, freshness) -> Answer:
    times = [t for t in (_synced(r, freshness) for r in resources) if t is not None]
    as_of = min(times) if times else None
    age = f"synced {_age_words((now - as_of).total_seconds())}" if as_of else "sync time unknown"
    if as_of and len(times) > 1 and max(times) != as_of:
        age = "the oldest " + age
    return Answer(text=f"{text} ({age})",
                  resources=list(dict.fromkeys(r.display_name for r in resources)), as_of=as_of)


def _scope_freshness(store: ResourceStore):
    """Sync times per scope, for documents that do not carry their own (None when the store keeps none)."""
    try:
        from app.estate.freshness import Freshness

        return Freshness.of_store(store, float("inf"))
    except Exception:  # noqa: BLE001 - without sync times the answer says the time is unknown
        return None


def _synced(resource: IdentifiedResource, freshness) -> datetime | None:
    when = resource.synced_at
    if when is None and freshness is not None:
        when = freshness.synced_at(resource)
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when


def _age_words(seconds: float) -> str:
    from app.estate.freshness import age_words

    words = age_words(max(0.0, seconds))
    return words if words == "just now" else f"{words} ago"


_UNITS = {"s": "s", "mb": "MB", "gb": "GB", "bytes": "bytes"}


def _key_words(key: str) -> str:
    return " ".join(p for p in key.split("_") if p not in _UNITS)


def _attribute_text(key: str, value: object) -> str:
    """timeout_s 30 -> "timeout 30 s", memory_mb 256 -> "memory 256 MB", engine_version -> "engine version"."""
    unit = _UNITS.get(key.rsplit("_", 1)[-1]) if "_" in key else None
    if isinstance(value, bool):
        value = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        value = ", ".join(last_segment(str(v)) for v in value) if value else "none"
    return f"{_key_words(key)} {value}" + (f" {unit}" if unit else "")


def _place(r: IdentifiedResource) -> str:
    return " / ".join(x for x in (r.account_name or r.account_id, r.region) if x)


def _listing(resources: list[IdentifiedResource]) -> str:
    shown = [f"{r.display_name} ({_place(r)})" for r in resources[:MAX_NAMED_IN_TEXT]]
    more = len(resources) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _noun(types: set[str], resources: list[IdentifiedResource]) -> str:
    kinds = types or {r.resource_type for r in resources}
    return TYPE_NOUNS.get(next(iter(kinds)), "resource") if len(kinds) == 1 else "resource"


def _plural(noun: str) -> str:
    return " ".join(noun.split()[:-1] + [plural_noun(noun.split()[-1])])


def _engine(resource: IdentifiedResource) -> str:
    return str(resource.engine or resource.attributes.get("engine") or "").lower()


def _where_words(parsed: ParsedPrompt, bare: bool = False) -> list[str]:
    """The places the question names, as it names them ("in production", "in oregon")."""
    words = [p.word for p in parsed.places if not p.embedded]
    return words if bare else [f"in {w}" for w in words]


def _in_places(parsed: ParsedPrompt, resources: list[IdentifiedResource]) -> list[IdentifiedResource]:
    accounts = parsed.accounts
    regions = {p.value for p in parsed.places if p.kind == "region"}
    return [r for r in resources if (not accounts or r.account_id in accounts)
            and (not regions or any((r.region or "").startswith(g) for g in regions))]

