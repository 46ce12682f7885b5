"""Which identified resources the prompt names, and which account or region it points at.

The client identified resources in its estate; the prompt decides which of them are targets. A name
counts as mentioned only as a whole token (``web-server-1`` does not mention ``web-server-10``).
Text the prompt carries is never turned into a target by itself: only resources the client sent can
be targets. Names inside a quoted message or a tag phrase ("the orders app's database") name nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.facts import ENVIRONMENT_KEYS, TYPE_NOUNS as TYPE_WORDS
from agent.lexicon import (ENVIRONMENT_WORDS, LINK_PHRASES, NOT_ACCOUNT_ALIASES, REGION_WORDS, carries_word,
                           exclusions, phrase_alternation, types_in)
from agent.prompt import ParsedPrompt, parse_prompt
from agent.protocol import IdentifiedResource, UserContext
from agent.text import REGION_IN_TEXT, last_segment, normalise, singular

# Type nouns that do not contradict a name they follow: "the orders-db instance" is the DB instance, "the
# pg-main server" may be a database server. A specific one does: "the orders topic" is no table.
_LOOSE_NOUNS = frozenset({"instance", "instances", "server", "servers", "host", "hosts", "box", "boxes", "machine",
                          "machines", "node", "nodes", "vm", "vms", "cluster", "clusters", "service", "services",
                          "db", "database", "databases"})


def aliases(resource: IdentifiedResource) -> list[str]:
    """The spellings by which a prompt may name a resource: id, name, ARN, the tail of a URL or ARN."""
    names = {resource.resource_id, resource.name or "", resource.arn or ""}
    for value in (resource.resource_id, resource.arn or ""):
        tail = last_segment(value)
        if len(tail) >= 3:
            names.add(tail)
    return sorted((n for n in names if n), key=len, reverse=True)


def _find(alias: str, text: str, *, spaced: bool = False) -> re.Match[str] | None:
    """The alias as a whole token. ``spaced`` (a resource's name): a dash or underscore in it may be
    typed as a space ("payments queue" names payments-queue; "payments queue dlq" names
    payments-queue-dlq, the longer mention)."""
    pattern = re.escape(normalise(alias))
    if spaced:
        pattern = pattern.replace("_", "[-_ ]").replace(r"\-", "[-_ ]")
    return re.search(r"(?<![\w-])" + pattern + r"(?![\w-]|\.\w)", text)


@dataclass
class Mention:
    resource: IdentifiedResource
    alias: str
    start: int
    end: int
    part_of: IdentifiedResource | None = None  # "the dlq of payments-queue": payments-queue, never the target


def request_prompt(prompt: str, user_context: UserContext, resources: list[IdentifiedResource]) -> ParsedPrompt:
    """The prompt parsed once for this request, with what the request knows: its accounts (names, profiles,
    ids, from the user context and the resources), their regions, and the resources' names."""
    known: dict[str, str] = {}
    regions: set[str] = set()
    for account in user_context.aws_accounts:
        regions.update(account.regions)
        if account.account_id:
            known.setdefault(account.name, account.account_id)
            if account.profile:
                known.setdefault(account.profile, account.account_id)
    for r in resources:
        if r.region:
            regions.add(r.region)
        if r.account_name and r.account_id:
            known.setdefault(r.account_name, r.account_id)
    if user_context.default_region:
        regions.add(user_context.default_region)
    names = {normalise(a) for r in resources for a in aliases(r)}
    return parse_prompt(prompt, accounts=known, regions=regions, is_name=names.__contains__)


def find_mentions(prompt: str, resources: list[IdentifiedResource], parsed: ParsedPrompt | None = None) -> list[Mention]:
    """Resources named in the prompt, longest alias first, with overlapping shorter matches dropped. A name
    inside a quoted message (longer than the name), a tag phrase or an exclusion ("except web-1") is no
    mention; nor is one that a specific type noun right after it contradicts ("the orders topic" is not the
    orders table)."""
    parsed = parsed or parse_prompt(prompt)
    text = parsed.text
    found: list[Mention] = []
    for resource in resources:
        for alias in aliases(resource):
            match = _find(alias, text) or (_find(alias, text, spaced=True) if alias == resource.name else None)
            if match and not _inside_a_value(parsed, match.start(), match.end()) \
                    and not any(e.start <= match.start() and match.end() <= e.end for e in parsed.excluded):
                found.append(Mention(resource, alias, match.start(), match.end()))
                break
    # A mention inside a longer mention of another resource does not count ("db" inside "orders-db").
    kept = []
    for m in found:
        if not any(o is not m and o.start <= m.start and m.end <= o.end and (o.end - o.start) > (m.end - m.start) for o in found):
            kept.append(m)
    kept = _qualified(parsed, kept)
    # A member named after its group (the instances an ASG launches carry the ASG's Name tag) is not
    # what "web-asg" means when the group itself was identified too.
    kept = [m for m in kept if not _member_of_same_name(m, kept)]
    # "the dlq of payments-queue": what is named is the queue's dead-letter queue, when it was identified
    # (when it was not, agent.targets asks instead of acting on the queue itself).
    out = []
    for m in kept:
        part = named_part(parsed, m, resources)
        if part is not None and part.referenced:
            out += [Mention(r, r.display_name, part.start, part.end, part_of=m.resource) for r in part.referenced]
        else:
            out.append(m)
    return out


# "the dlq of payments-queue", "payments-queue's dead letter queue", "the read replicas of orders-db", "the
# volume attached to build-1": a part of the named resource, said as the name of one of its relations or
# attributes (or that name's initials).
# Besides the link phrases every reader shares (agent.lexicon.LINK_PHRASES), the plain prepositions of a part.
_PART_CONNECTOR = re.compile(r"\s(?:(?:that|which)\s+(?:is|are|'s)\s+)?"
                             + phrase_alternation(("of", "for", "behind", "from") + LINK_PHRASES) + r"\s+(?:the\s+)?$")
_PART_AFTER = re.compile(r"^(?:'s|’s)\s+(?!(?:new|another)\s)((?:[a-z][a-z-]*\s*){1,3})")
# Words of a key that say how a value is written, not what it is (dead_letter_queue_url is the dlq).
_ID_NOISE = frozenset({"arn", "arns", "id", "ids", "url", "urls"})
_KEY_NOISE = _ID_NOISE | {"name", "names"}
# Words for a relation that its key does not spell: "the primary of db-07-ro" is its source_instance (a
# search's loose reading, ``says_key(loose=True)``).
_RELATION_SYNONYMS: dict[str, str] = {"primary": "source", "master": "source", "writer": "source", "origin": "source",
                                     "parent": "source", "dead-letter": "dlq"}


@dataclass
class NamedPart:
    said: str                              # the words that name the part ("dlq", "read replicas")
    owner: IdentifiedResource              # the resource the prompt names
    referenced: list[IdentifiedResource]   # the identified resources the part refers to (may be none)
    start: int                             # the span of part + owner in the parsed text
    end: int
    empty: bool = False                    # the resource has that relation and it is empty (no replicas)


@dataclass
class PartWords:
    """The words around a name that may name a part of it: "the dlq of <name>" (``before``) or
    "<name>'s dlq"; ``reach`` is where they end in the text (before: the end of the words ahead of the
    connector; after: the end of the words after the name)."""
    words: list[str]
    before: bool
    reach: int


def part_words(text: str, start: int, end: int) -> PartWords | None:
    """The part words around the name at ``text[start:end]``, or None when none are said."""
    after = _PART_AFTER.match(text[end:])
    if after:
        return PartWords(re.findall(r"[a-z]+", after.group(1))[:4], False, end + after.end())
    connector = _PART_CONNECTOR.search(text[:start])
    if connector:
        return PartWords(re.findall(r"[a-z]+", text[:connector.start()])[-4:], True, connector.start())
    return None


def named_part(parsed: ParsedPrompt, mention: "Mention", identified: list[IdentifiedResource]) -> NamedPart | None:
    """The part of ``mention``'s resource the prompt asks for instead of the resource itself, or None.
    The longest relation name the words spell wins; one that only points back at the resource itself is
    no part."""
    if mention.end <= mention.start:
        return None
    said_around = part_words(parsed.text, mention.start, mention.end)
    if said_around is None:
        return None
    owner = mention.resource
    best: NamedPart | None = None
    # Only relations name other resources; an attribute ("the instance class of X") is a value of X itself.
    for key, value in owner.relations.items():
        said = says_key(said_around.words, key, from_end=said_around.before)
        if said is None or (best is not None and len(said) <= len(best.said)):
            continue
        values = [str(v) for v in (value if isinstance(value, list | tuple) else [value]) if v]
        if values and all(refers_to(v, owner) for v in values):
            continue
        referenced = [r for r in identified if r is not owner and any(refers_to(v, r) for v in values)]
        if said_around.before:
            head = parsed.text[:said_around.reach]
            start, end = head.rfind(said.split()[0]), mention.end
            if re.search(r"(?<![\w-])(?:a|an|new|another|more)\s+$", head[:start]):
                continue  # "create a read replica of billing-mysql": a new one, not one that exists
        else:
            start, end = mention.start, said_around.reach
        best = NamedPart(said, owner, referenced, start, end, empty=not values)
    return best


def says_key(words: list[str], key: str, *, from_end: bool, loose: bool = False) -> str | None:
    """The words of ``words`` that spell ``key`` (dead_letter_queue: "dead letter queue" or "dlq").

    ``loose`` is a search's reading of its head words (app.estate.lookup: "replicas of db-07"), where
    nothing is acted on: the key's first or last word alone also spells it ("replicas": read_replicas,
    "source": source_instance), ``_RELATION_SYNONYMS`` stand for the words they map to ("primary"), and
    "name" stays a word of the key (that reading never dropped it). The planner's reading is strict: a
    part it names becomes a target."""
    noise = _ID_NOISE if loose else _KEY_NOISE
    key_words = [singular(w) for w in key.split("_") if w not in noise]
    if not key_words:
        return None
    said = [singular(_RELATION_SYNONYMS.get(w, w) if loose else w) for w in words]
    initials = "".join(w[0] for w in key_words)
    for n in range(len(said), 0, -1):  # the longest run first
        run = said[-n:] if from_end else said[:n]
        if (run == key_words or (len(key_words) > 1 and run == [initials])
                or (loose and n == 1 and run[0] in (key_words[0], key_words[-1]))):
            return " ".join(words[-n:] if from_end else words[:n])
    return None


def refers_to(value: str, resource: IdentifiedResource) -> bool:
    """Does ``value`` (an ARN, URL, id or name held by another resource) name ``resource``?"""
    keys = {normalise(k) for k in (resource.resource_id, resource.name, resource.arn) if k}
    return normalise(value) in keys or normalise(last_segment(value)) in keys


def _inside_a_value(parsed: ParsedPrompt, start: int, end: int) -> bool:
    quoted = any(s.start <= start and end <= s.end and (s.end - s.start) > (end - start) + 2 for s in parsed.quoted_spans)
    tagged = any(t.span.start <= start and end <= t.span.end for t in parsed.tag_phrases)
    return quoted or tagged


def _qualified(parsed: ParsedPrompt, mentions: list[Mention]) -> list[Mention]:
    """Drop mentions whose name is followed by a specific type noun of another type ("the orders topic"
    when orders is a table), unless nothing of the noun's type shares the name either."""
    out = []
    for m in mentions:
        noun = next((n for n in parsed.type_nouns if parsed.text[m.end:n.span.start].strip() == ""
                     and n.span.start >= m.end), None)
        if noun is None or noun.span.text in _LOOSE_NOUNS or m.resource.resource_type in noun.types:
            out.append(m)
    return out


def unmatched_names(parsed: ParsedPrompt, mentions: list[Mention]) -> list[str]:
    """Names the operator typed (name-shaped words, names typed with spaces) that no identified resource
    answers to: "stop pg-instance-main3" when only main1 and main2 exist."""
    return [n.text for n in parsed.names
            if not any(m.start < n.end and n.start < m.end for m in mentions)]


def candidate_types(masked: str, mentions: list[Mention], resources: list[IdentifiedResource],
                    parsed: ParsedPrompt | None = None) -> set[str]:
    """Types the request can be about: those of the resources it names, plus identified resources whose
    type the prompt's nouns point at ("web-alb's target group" -> the target group the client sent). With
    no resource named, the type the prompt names wins even when nothing of it was identified: "delete the
    payments-events topic" is about a topic, never about a database whose name shares some letters. The
    nouns are the parsed prompt's: free-standing words, not the "db" inside acme-prod-db-backups."""
    identified = {r.resource_type for r in resources}
    named = {m.resource.resource_type for m in mentions}
    spoken = parsed.types if parsed is not None else types_in(masked)
    if named:
        return named | (spoken & identified)
    return spoken or identified


# Relations that make a resource the dependent side: an instance in an Auto Scaling group, a volume
# attached to an instance. Such a resource often carries its parent's name.
_DEPENDENT_ON = ("autoscaling_group", "attached_to")


def _member_of_same_name(m: Mention, mentions: list[Mention]) -> bool:
    parents = {v for key in _DEPENDENT_ON for v in m.resource.relations.get(key, [])}
    return any(other is not m and normalise(other.alias) == normalise(m.alias)
               and (other.resource.resource_id in parents or other.resource.name in parents)
               for other in mentions)


def masked_prompt(prompt: str, mentions: list[Mention]) -> str:
    """The prompt with every mentioned name replaced by its type noun: 'stop pg-main' -> 'stop database'.

    Names are noise to the classifier ("web-server-1" is not a verb); their type is signal.
    """
    text = normalise(prompt)
    spans = {(m.start, m.end): m for m in mentions}  # one name in two accounts is one span, replaced once
    for (start, end), m in sorted(spans.items(), reverse=True):
        text = text[:start] + TYPE_WORDS.get(m.resource.resource_type, "resource") + text[end:]
    return text


@dataclass
class Hints:
    regions: set[str]
    accounts: set[str]  # account ids the prompt points at
    phrases: list[str] = field(default_factory=list)  # the words that said so ("in staging")


def without_hints(text: str, hints: Hints) -> str:
    """Drop "in staging" / "us-east-1" from text for the classifier: where is not what."""
    for phrase in sorted(hints.phrases, key=len, reverse=True):
        text = re.sub(r"(?:\b(?:in|on|from|for|of)\s+)?(?:the\s+)?(?<![\w-])" + re.escape(phrase)
                      + r"(?![\w-])(?:\s+(?:account|env|environment|region))?", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def find_hints(prompt: str | ParsedPrompt, user_context: UserContext, resources: list[IdentifiedResource]) -> Hints:
    """Regions (codes, place names, short codes), 12-digit account ids and accounts by name, alias or a
    part of their name ("in staging", "on prd", "preprod") found in the prompt."""
    parsed = prompt if isinstance(prompt, ParsedPrompt) else request_prompt(prompt, user_context, resources)
    known_regions = {r.region for r in resources if r.region} | {g for a in user_context.aws_accounts for g in a.regions}
    return Hints(regions=parsed.region_set(known_regions), accounts=parsed.accounts,
                 phrases=[p.span.text for p in parsed.places])


def excluded_words(prompt: str) -> list[str]:
    """The words the prompt excludes ("every instance in staging except web-1" -> ["web-1"])."""
    return [word for _, _, word in exclusions(normalise(prompt))]


def is_excluded(resource: IdentifiedResource, words: list[str]) -> bool:
    """Whether a prompt that excludes ``words`` excluded ``resource``: one of them is its name, id or state,
    a part of its name ("dlq" of payments-dlq), its environment ("prod": by tag or account name), its region
    or a place that names it ("oregon", "europe"), or its account. Read by the planner, which never targets
    it, and by the client's check of any plan, which refuses a change to it."""
    for word in words:
        if carries_word(resource.name or "", word) or carries_word(resource.resource_id, word):
            return True
        if word in ((resource.current_state or "").lower(), (resource.account_name or "").lower(), resource.account_id):
            return True
        region = REGION_WORDS.get(word, word if REGION_IN_TEXT.fullmatch(word) else None)
        if region and (resource.region or "").startswith(region):
            return True
        wanted = ENVIRONMENT_WORDS.get(word)
        if wanted:
            own = environment_of(resource)
            if own == wanted or (wanted == "nonprod" and own not in (None, "production")):
                return True
    return False


def environment_of(resource: IdentifiedResource) -> str | None:
    """production / staging / development / nonprod from an environment tag, else from the account's name."""
    for key, value in resource.tags.items():
        if key.lower() in ENVIRONMENT_KEYS and value.strip().lower() in ENVIRONMENT_WORDS:
            return ENVIRONMENT_WORDS[value.strip().lower()]
    for part in re.split(r"[-_\s]+", (resource.account_name or "").lower()):
        if part in ENVIRONMENT_WORDS and part not in NOT_ACCOUNT_ALIASES:
            return ENVIRONMENT_WORDS[part]
    return None
