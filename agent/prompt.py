"""The prompt, read once: every word a stage of a request looks for, found by one parser with one set of
word tables (agent.lexicon).

Why one structure: the client's lookup (app.estate.lookup), its context builder and question answerer
(app.estate.context, app.estate.answers) and the planner's mentions, targets and values (agent.mentions,
agent.targets, agent.slots) used to read region, environment, state and quote words each with its own
list, so "oregon" narrowed the lookup but not the planner, and a quote with an apostrophe inside was cut
by one reader and not by another. Now each of them reads a :class:`ParsedPrompt`.

The parser knows nothing about the estate beyond what its caller passes: the account names it knows
(name -> id), the regions it knows (to resolve "europe" to the eu-* regions), and a predicate saying
whether a word is a resource's exact name (a queue called "staging" is not an account hint, and "redis
cache box" is the resource redis-cache-box). Spans index :attr:`ParsedPrompt.text`, the normalised prompt;
quoted values are taken from the prompt as typed, whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from agent.lexicon import (ENGINE_WORDS, ENVIRONMENT_WORDS, NOT_ACCOUNT_ALIASES, REGION_WORDS, SHORT_DIRECTIONS,
                           SHORT_REGION, STATE_WORDS, TYPE_NOUNS, exclusions, plural_noun)
from agent.text import REGION_IN_TEXT, fold_accents, normalise

NameCheck = Callable[[str], bool]

_ACCOUNT_ID = re.compile(r"(?<![\d\w-])(\d{12})(?![\d\w-])")
# A word as an operator types a resource's name or id: letters, digits and . _ : / - inside.
_WORD = re.compile(r"[a-z0-9][a-z0-9_.:/@+-]*[a-z0-9]|[a-z0-9]")
_TAG_TERM = re.compile(r"(?<![\w.:/=!-])([a-z][\w.:/-]*)\s*(!=|=)\s*([\w.:/*-]+)")
# Words that are values, not names: versions (python3.9, 14.10), sizes and durations (100gb, 30s), ordinals.
_VALUE_SHAPED = re.compile(r"^(?:[a-z]*\d+(?:\.\d+)+[a-z]*|\d+[a-z]{0,3}|v\d+(?:\.\d+)*|x86_64|arm64|ipv[46]|"
                           r"[a-z][a-z0-9-]*\.(?:nano|micro|small|medium|large|xlarge|\d+xlarge|metal)|"
                           r"db\.[a-z0-9]+\.[a-z0-9]+)$")
# Dashed words of ordinary English that are no resource's name.
_DASHED_WORDS = frozenset({"re-enable", "multi-az", "single-az", "point-in-time", "fail-over", "read-only", "follow-up",
                           "on-demand", "auto-scaling", "dead-letter", "x-ray", "non-prod", "non-production", "in-use",
                           "e-mail", "up-to-date", "out-of-date", "long-running", "re-deploy", "re-run", "right-size",
                           "well-known", "cross-account", "cross-region", "pre-prod", "set-up", "roll-back",
                           "clean-up", "shut-down", "start-up", "back-up", "check-in", "opt-in", "opt-out", "real-time"})
# Requests for information, phrased as orders: answered like questions ("tell me whether X is running").
_ASKING = re.compile(r"^(?:give\s+me|tell\s+me|show\s+me|let\s+me\s+know|do\s+you\s+know|i(?:'d|\s+would)\s+like\s+"
                     r"to\s+know|i\s+(?:want|need)\s+to\s+know|find\s+out|check\s+(?:whether|if))\b")
_INTERJECTION = re.compile(r"^\s*(?:(?:hey|hi|hello|ok|okay|so|um|uh|quick question|qq|btw|yo|morning|folks|team)"
                           r"(?:\s*[,!:.]\s*|\s+))+")
_WH = r"(?:what|what's|whats|which|who|who's|whos|whose|how|when|where|why)"
_AUX = r"(?:is|are|was|were|has|have|had|did|does|isn't|aren't|wasn't|doesn't|didn't|hasn't|haven't)"
# "can you stop it?", "could versioning be switched on?", "please ..." ask for something to be done.
_REQUEST = re.compile(r"^\s*(?:can|could|would|will|shall)\b|\b(?:can|could|would|will)\s+(?:you|u|ya|someone|somebody|"
                      r"anyone|we)\b|\b(?:please|pls|plz)\b")
_COUNT = re.compile(r"^\s*(?:how\s+many|how\s+much|number\s+of|count\s+(?:of|the|all|our|my))\b")
_EVERY = re.compile(r"(?<![\w-])(all|every|each|both|everything)(?![\w-])")
# A value follows these: "named foo-1" names a new thing, not a resource to find.
_NAMING_CUE = re.compile(r"(?:\b(?:named|called|titled|labell?ed|as|name\s+it|call\s+it|name\s+them)|--[a-z][a-z-]*)"
                         r"\s*[:=]?\s*$")
_EVERYTHING = re.compile(r"(?<![\w-])(everything|every\s+resource|all\s+(?:the\s+)?resources|all\s+of\s+it)(?![\w-])")
_TAG_KEYS = {"app": ("app", "application"), "application": ("app", "application"), "team": ("team",),
             "project": ("project",), "owner": ("owner",), "squad": ("team", "squad")}
_TAG_KEY_WORDS = "|".join(_TAG_KEYS)
# "what resources are tagged owner=jdoe?": a question about a set that names no type.
_ANY_RESOURCES = re.compile(r"(?<![\w-])(?:resources|things|anything|everything)(?![\w-])")
_VALUE = r"([a-z0-9][a-z0-9_.-]*)"
_POSSESSIVE = r"(?:'s|’s|s'|s’)"
_TAG_PHRASES = [
    # "for app billing", "owned by team data", "of the orders app"
    re.compile(r"\b(?:for|of|from|in|on|with|by|belonging\s+to|belongs?\s+to|run\s+by|used\s+by|owned\s+by)\s+(?:the\s+)?"
               r"(" + _TAG_KEY_WORDS + r")\s+" + _VALUE + _POSSESSIVE + r"?(?![\w-])"),
    # "team data's instances", "app orders' queue"
    re.compile(r"\b(" + _TAG_KEY_WORDS + r")\s+" + _VALUE + _POSSESSIVE + r"(?![\w-])"),
    # "the orders app's database", "the data team's lambdas", "our billing app"
    re.compile(r"\b(?:the|our|my)\s+" + _VALUE + r"\s+(" + _TAG_KEY_WORDS + r")" + _POSSESSIVE + r"?(?![\w-])"),
    # "owned by jdoe"
    re.compile(r"\b(owned)\s+by\s+" + _VALUE + r"(?![\w-])"),
]
# Words that are never a tag's value in such a phrase ("the app", "our team's").
_NOT_VALUES = frozenset("the a an our my your their its this that these those all every each any some which what whose "
                        "same new old other another his her one".split())
_SINGLE_QUOTES = "'‘’"
_DOUBLE_QUOTES = {'"': '"”“', '“': '”"', '”': '”"', '„': '“”"', '`': '`', '«': '»'}


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Quoted:
    """A value the operator quoted, whole: ``"db won't start, investigating"`` keeps its apostrophe."""

    value: str
    start: int  # the opening quote, in the prompt as typed
    end: int    # after the closing quote


@dataclass(frozen=True)
class Place:
    """A region or account the prompt points at. ``span`` covers the words to drop with it ("in the staging
    account"); ``word`` is the word that said so ("staging")."""

    kind: Literal["region", "account"]
    value: str  # a region, a region prefix ("eu-") or an account id
    word: str
    span: Span
    embedded: bool = False  # read from inside an ARN or URL that names no known resource


@dataclass(frozen=True)
class TypeNoun:
    types: frozenset[str]
    plural: bool
    span: Span


@dataclass(frozen=True)
class TagPhrase:
    """A tag said in words: "for app billing" -> app=billing (the key may be spelled app or application)."""

    keys: tuple[str, ...]
    value: str
    span: Span


@dataclass(frozen=True)
class Question:
    """``count`` (how many), ``which`` (which/what <things> ...: a set), ``yes_no`` (is/are/does ...), or
    ``what`` (any other question: what's the status of X, what engine version is X on)."""

    kind: Literal["count", "which", "yes_no", "what"]


@dataclass
class ParsedPrompt:
    prompt: str
    text: str
    quoted: list[Quoted] = field(default_factory=list)
    quoted_spans: list[Span] = field(default_factory=list)  # the same values, in ``text``
    protected: list[Span] = field(default_factory=list)  # ids, ARNs, URLs, exact names: never hints or nouns
    spaced_names: list[Span] = field(default_factory=list)  # "redis cache box": a name typed with spaces
    names: list[Span] = field(default_factory=list)  # name-shaped words (pg-instance-main3, payments-events)
    # What the resources meant must not be or carry ("except web-1", "that isn't the dlq"): never a name,
    # a state or a hint of the request (agent.lexicon.exclusions).
    excluded: list[Span] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)
    environments: list[tuple[str, Span]] = field(default_factory=list)  # ("production", span of "prod")
    states: list[tuple[str, Span]] = field(default_factory=list)  # ("stopped", span of "idle")
    engines: list[str] = field(default_factory=list)  # database engines said ("postgres" for "pg", "postgresql")
    type_nouns: list[TypeNoun] = field(default_factory=list)
    tag_terms: list[tuple[str, str, bool]] = field(default_factory=list)  # (key, value, negated) typed as key=value
    tag_phrases: list[TagPhrase] = field(default_factory=list)
    question: Question | None = None
    every: bool = False  # all / every / each / both / everything
    everything: bool = False  # everything, every resource: not only one type

    # -- what the stages ask ---------------------------------------------------------------------------
    @property
    def regions(self) -> set[str]:
        """Regions and region prefixes ("eu-") the prompt names; see :meth:`region_set`."""
        return {p.value for p in self.places if p.kind == "region"}

    def region_set(self, known: Iterable[str]) -> set[str]:
        """The named regions, prefixes resolved against ``known`` ("europe" -> the known eu-* regions)."""
        known = {str(r) for r in known}
        out: set[str] = set()
        for value in self.regions:
            out |= {r for r in known if r.startswith(value)} if value.endswith("-") else {value}
        return out

    @property
    def accounts(self) -> set[str]:
        return {p.value for p in self.places if p.kind == "account"}

    @property
    def environment(self) -> str | None:
        return self.environments[0][0] if self.environments else None

    @property
    def state(self) -> str | None:
        return self.states[0][0] if self.states else None

    @property
    def types(self) -> set[str]:
        return {t for noun in self.type_nouns for t in noun.types}

    @property
    def head_types(self) -> set[str]:
        """The types of the head noun: the first type noun ("lambda that rotates the database password"); of a
        run of them the last ("auth service queue"), or the specific one before a generic last ("k8s cluster");
        none when what follows is something a resource has that is no resource ("database backups", "db creds":
        about backups and credentials, not about databases)."""
        nouns = sorted(self.type_nouns, key=lambda n: n.span.start)
        i = 0
        while i < len(nouns):
            j = i
            while j + 1 < len(nouns) and not self.text[nouns[j].span.end:nouns[j + 1].span.start].strip():
                j += 1  # "postgres database", "service queue": one compound, its last noun the head
            after = _NEXT_WORD.match(self.text, nouns[j].span.end)
            if not (after and after.group(1) in _NOT_RESOURCES):
                head = j
                while head > i and nouns[head].span.text in _GENERIC_NOUNS:
                    head -= 1  # "k8s cluster": the kubernetes one
                return set(nouns[head].types)
            i = j + 1
        return set()

    @property
    def plural(self) -> bool:
        return any(n.plural for n in self.type_nouns)

    @property
    def asks_for_a_set(self) -> bool:
        """A question about resources of a type rather than one named resource ("which instances are
        stopped?", "how many lambdas run python3.9?", "do we have any databases in staging?")."""
        q = self.question
        return bool(q and not self.names and (q.kind in ("count", "which") or self.plural or self.tag_terms
                                               or self.tag_phrases or _ANY_RESOURCES.search(self.text)))

    def without(self, spans: Iterable[Span]) -> str:
        """``text`` with ``spans`` blanked out, spaces collapsed."""
        chars = list(self.text)
        for span in spans:
            chars[span.start:span.end] = " " * (span.end - span.start)
        return re.sub(r"\s+", " ", "".join(chars)).strip()

    def hint_spans(self) -> list[Span]:
        return [p.span for p in self.places]

    def in_values(self, start: int, end: int) -> bool:
        """Is text[start:end] inside a quoted value?"""
        return any(s.start <= start and end <= s.end for s in self.quoted_spans)


# -- the parser -------------------------------------------------------------------------------------

def quoted_values(prompt: str) -> list[Quoted]:
    """Quoted values, whole. Double quotes (and “ ”, „ “, backticks, « ») pair with their closer whatever
    lies between, apostrophes included; a single quote opens only at the start of a word and closes only
    at the end of one, so "it's" and "the orders app's database" hold no quote, and 'it's done' is whole."""
    out: list[Quoted] = []
    i, n = 0, len(prompt)
    while i < n:
        ch = prompt[i]
        end = -1
        if ch in _DOUBLE_QUOTES:
            end = next((k for k in range(i + 1, n) if prompt[k] in _DOUBLE_QUOTES[ch]), -1)
        elif ch in _SINGLE_QUOTES and (i == 0 or not (prompt[i - 1].isalnum() or prompt[i - 1] in "_-")):
            end = next((k for k in range(i + 2, n) if prompt[k] in _SINGLE_QUOTES and not prompt[k - 1].isspace()
                        and (k + 1 == n or not prompt[k + 1].isalnum())), -1)
        if end > i + 1 and prompt[i + 1:end].strip():
            out.append(Quoted(prompt[i + 1:end], i, end + 1))
            i = end + 1
        else:
            i += 1
    return out


def account_words(known: Mapping[str, str]) -> dict[str, str]:
    """Every word that names a known account (lowercased name -> id): the names; an environment's other
    words for an account named after it ("prod" for the production account); and a part of a name that no
    other account shares ("preprod" for media-preprod)."""
    words = {normalise(name): account_id for name, account_id in known.items() if name and account_id}
    for name, account_id in list(words.items()):
        env = ENVIRONMENT_WORDS.get(name)
        if env:
            for word, other in ENVIRONMENT_WORDS.items():
                if other == env and word not in NOT_ACCOUNT_ALIASES:
                    words.setdefault(word, account_id)
    parts: dict[str, set[str]] = {}
    for name, account_id in words.items():
        for part in re.split(r"[-_\s]+", name):
            if len(part) >= 2 and part != name:
                parts.setdefault(part, set()).add(account_id)
    for part, ids in parts.items():
        if len(ids) == 1 and part not in words:
            words[part] = next(iter(ids))
    return words


def _short_region(match: re.Match[str]) -> str:
    return f"{match.group(1)}-{SHORT_DIRECTIONS[match.group(2)]}-{match.group(3)}"


_NOUN_TYPES: dict[str, set[str]] = {}
_SINGULAR_NOUNS: set[str] = set()
for _rtype, _nouns in TYPE_NOUNS.items():
    for _noun in _nouns:
        _SINGULAR_NOUNS.add(_noun)
        for _form in (_noun, plural_noun(_noun)):
            _NOUN_TYPES.setdefault(_form, set()).add(_rtype)
for _form, _rtype in {"dbs": "rds_db_instance", "lambdas": "lambda_function", "asgs": "autoscaling_group",
                      "albs": "elbv2_load_balancer", "nlbs": "elbv2_load_balancer", "elbs": "elbv2_load_balancer",
                      "vms": "ec2_instance", "ec2s": "ec2_instance", "ddbs": "dynamodb_table"}.items():
    _NOUN_TYPES.setdefault(_form, set()).add(_rtype)
_NOUN_PATTERN = re.compile(r"(?<![\w-])(" + "|".join(re.escape(n).replace(r"\ ", r"\s+")
                                                    for n in sorted(_NOUN_TYPES, key=len, reverse=True))
                           + r")(?![\w-])")


_REGION_PATTERNS = [(word, value, re.compile(r"(?:\b(?:in|from|across)\s+(?:the\s+)?)?(?<![\w-])"
                                             + re.escape(word).replace(r"\ ", r"\s+") + r"(?![\w-])(?:\s+region)?"))
                    for word, value in REGION_WORDS.items()]
_WORD_PATTERNS = {word: re.compile(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])")
                  for word in [*ENVIRONMENT_WORDS, *STATE_WORDS, *ENGINE_WORDS]}


_NEXT_WORD = re.compile(r"\s+([a-z][a-z'-]*)")
# Things a resource has or makes that are not resources the estate holds: after a type noun they make it a
# modifier ("database backups", "db creds", "bucket policy", "queue messages").
_NOT_RESOURCES = frozenset("""backup backups cred creds credential credentials password passwords secret secrets key
keys log logs metric metrics alarm alarms snapshot snapshots cert certs certificate certificates cost costs bill bills
policy policies permission permissions user users setting settings parameter parameters message messages record
records data dump dumps export exports report reports schema schemas migration migrations""".split())
# A run of type nouns ends in a generic one ("k8s cluster", "aurora instance"): the specific noun before it says
# the type.
_GENERIC_NOUNS = frozenset({"cluster", "clusters", "instance", "instances", "server", "servers", "service", "services",
                            "group", "groups", "node", "nodes", "machine", "machines", "box", "boxes", "host", "hosts"})


def parse_prompt(prompt: str, *, accounts: Mapping[str, str] | None = None, regions: Iterable[str] = (),
                 is_name: NameCheck | None = None) -> ParsedPrompt:
    """Read ``prompt`` once. ``accounts``: known account names (and profiles) -> ids; ``regions``: known
    regions, for place names that stand for several ("europe"); ``is_name``: whether a lowercased word is
    some resource's exact name or id (then it is a name, not a hint, and its type nouns are part of it)."""
    is_name = is_name or (lambda _word: False)
    text = normalise(prompt)
    parsed = ParsedPrompt(prompt=prompt, text=text, quoted=quoted_values(prompt))
    parsed.quoted_spans = [Span(q.start, q.end, text[q.start:q.end]) for q in quoted_values(text)]
    taken: list[Span] = list(parsed.quoted_spans)

    def free(start: int, end: int) -> bool:
        return not any(s.start < end and start < s.end for s in taken)

    for match in _TAG_TERM.finditer(text):
        if free(match.start(), match.end()):
            parsed.tag_terms.append((match.group(1), match.group(3), match.group(2) == "!="))
            taken.append(Span(match.start(), match.end(), match.group(0)))
    for start, end, word in exclusions(text):
        if free(start, end):
            at = text.rindex(word, start, end)
            parsed.excluded.append(Span(at, at + len(word), word))
            taken.append(Span(start, end, text[start:end]))
    # Ids, ARNs, URLs and exact names are matched whole: an ARN holds a region, a name may hold "dev". A
    # tag phrase comes before plain-word names: in "the orders app's database", orders is the app's name.
    _protect(parsed, lambda word: ":" in word or "/" in word, free, taken)
    _places_in_identifiers(parsed, is_name)
    _tag_phrases(parsed, free, taken)
    _protect(parsed, lambda word: is_name(word) and not word.isdigit(), free, taken)
    _spaced_names(parsed, is_name, free, taken)
    _places(parsed, accounts or {}, {str(r) for r in regions}, is_name, free, taken)
    for match in _NOUN_PATTERN.finditer(text):
        if free(match.start(), match.end()):
            form = re.sub(r"\s+", " ", match.group(1))
            parsed.type_nouns.append(TypeNoun(frozenset(_NOUN_TYPES[form]), form not in _SINGULAR_NOUNS,
                                              Span(match.start(), match.end(), form)))
    for word, state in STATE_WORDS.items():
        for match in _WORD_PATTERNS[word].finditer(text):
            if free(match.start(), match.end()):
                parsed.states.append((state, Span(match.start(), match.end(), word)))
    parsed.states.sort(key=lambda s: s[1].start)
    for word, engine in ENGINE_WORDS.items():
        if any(free(m.start(), m.end()) for m in _WORD_PATTERNS[word].finditer(text)):
            parsed.engines.append(engine)
    _names(parsed, free)
    parsed.question = question_form(text)
    every = [m for m in _EVERY.finditer(text) if free(m.start(), m.end())]
    parsed.every = bool(every)
    parsed.everything = any(free(m.start(), m.end()) for m in _EVERYTHING.finditer(text))
    return parsed


def _protect(parsed: ParsedPrompt, which: NameCheck, free, taken: list[Span]) -> None:
    for match in _WORD.finditer(parsed.text):
        word = match.group(0).rstrip(".:")
        span = Span(match.start(), match.start() + len(word), word)
        if free(span.start, span.end) and which(word):
            parsed.protected.append(span)
            taken.append(span)
    parsed.protected.sort(key=lambda s: s.start)


def _places_in_identifiers(parsed: ParsedPrompt, is_name: NameCheck) -> None:
    """An ARN or URL that is no known resource's still says where it points ("https://sqs.us-west-2.amazonaws
    .com/222222222222/orders-queue" is in us-west-2, account 222222222222): its region and account are hints."""
    for span in parsed.protected:
        if is_name(span.text):
            continue
        for match in REGION_IN_TEXT.finditer(span.text):
            at = Span(span.start + match.start(1), span.start + match.end(1), match.group(1))
            parsed.places.append(Place("region", match.group(1), match.group(1), at, embedded=True))
        for match in re.finditer(r"(?<!\d)(\d{12})(?!\d)", span.text):
            at = Span(span.start + match.start(1), span.start + match.end(1), match.group(1))
            parsed.places.append(Place("account", match.group(1), match.group(1), at, embedded=True))


def _spaced_names(parsed: ParsedPrompt, is_name: NameCheck, free, taken: list[Span]) -> None:
    """Runs of 2-6 plain words that spell a resource's name with spaces for its separators ("the redis cache
    box" -> redis-cache-box), longest first."""
    words = list(re.finditer(r"[a-z0-9]+", parsed.text))[:80]  # a name is typed early; cost stays bounded
    found: list[Span] = []
    for size in range(min(6, len(words)), 1, -1):
        for start in range(len(words) - size + 1):
            run = words[start:start + size]
            first, last = run[0].start(), run[-1].end()
            gaps = [parsed.text[a.end():b.start()] for a, b in zip(run, run[1:])]
            # Spaces for (some of) its separators; the name typed as it is is an exact word already.
            if not all(g.isspace() or g in ("-", "_", ".") for g in gaps) or not any(g.isspace() for g in gaps):
                continue
            if run[0].group(0) in _NOT_VALUES or run[-1].group(0) in _NOT_VALUES:
                continue
            if not free(first, last) or any(s.start < last and first < s.end for s in found):
                continue
            plain = [w.group(0) for w in run]
            name = next((sep.join(plain) for sep in ("-", "_", ".") if is_name(sep.join(plain))), None)
            if name:
                found.append(Span(first, last, name))
    parsed.spaced_names = sorted(found, key=lambda s: s.start)
    taken += found


def _places(parsed: ParsedPrompt, accounts: Mapping[str, str], regions: set[str], is_name: NameCheck, free,
            taken: list[Span]) -> None:
    text = parsed.text

    def add(kind: str, value: str, word: str, match: re.Match[str]) -> None:
        span = Span(match.start(), match.end(), match.group(0))
        parsed.places.append(Place(kind, value, word, span))  # type: ignore[arg-type]
        taken.append(span)

    for match in re.finditer(r"(?:\b(?:in|from|on)\s+(?:the\s+)?)?(?:--region[\s=]+)?" + REGION_IN_TEXT.pattern
                             + r"(?:\s+region)?", text):
        if free(match.start(), match.end()):
            add("region", match.group(1), match.group(1), match)
    for match in re.finditer(r"(?:\b(?:in|from|on)\s+(?:the\s+)?)?" + SHORT_REGION.pattern, text):
        if free(match.start(), match.end()) and not is_name(match.group(0).split()[-1]):
            add("region", _short_region(match), match.group(0).split()[-1], match)
    folded = fold_accents(text)  # "são paulo" is sao paulo
    for word, value, pattern in _REGION_PATTERNS:
        if word.split()[-1] not in folded:
            continue
        for match in pattern.finditer(folded):
            if not free(match.start(), match.end()) or is_name(word):
                continue
            # A prefix counts only where a region of it is known (else the lookup says none is synced).
            if value.endswith("-") and regions and not any(r.startswith(value) for r in regions):
                continue
            if value.endswith("-") and not regions:
                continue
            add("region", value, word, match)
    for name, account_id in sorted(account_words(accounts).items(), key=lambda kv: -len(kv[0])):
        pattern = (r"(?:\b(?:in|on|from|for)\s+(?:the\s+)?)?(?<![\w-])" + re.escape(name)
                   + r"(?![\w-])(?:\s+(?:account|acct|env|environment))?")
        for match in re.finditer(pattern, text):
            if free(match.start(), match.end()) and not is_name(name):
                add("account", account_id, name, match)
    for match in re.finditer(r"(?:\b(?:in|on|from)\s+(?:the\s+)?)?(?:(?:account|acct)\s+)?" + _ACCOUNT_ID.pattern
                             + r"(?:\s+(?:account|acct))?", text):
        if free(match.start(), match.end()):
            add("account", match.group(1), match.group(1), match)
    parsed.places.sort(key=lambda p: p.span.start)
    for word, env in ENVIRONMENT_WORDS.items():
        for match in _WORD_PATTERNS[word].finditer(text):
            inside_account = any(p.kind == "account" and p.span.start <= match.start() and match.end() <= p.span.end
                                 for p in parsed.places)
            if (inside_account or free(match.start(), match.end())) and not is_name(word):
                parsed.environments.append((env, Span(match.start(), match.end(), word)))
    parsed.environments.sort(key=lambda e: e[1].start)


def _tag_phrases(parsed: ParsedPrompt, free, taken: list[Span]) -> None:
    for pattern in _TAG_PHRASES:
        for match in pattern.finditer(parsed.text):
            first, second = match.group(1), match.group(2)
            key, value = (first, second) if first in _TAG_KEYS or first == "owned" else (second, first)
            if (value in _NOT_VALUES or value in _TAG_KEYS or value in ENVIRONMENT_WORDS or value in _NOUN_TYPES
                    or value in STATE_WORDS or not free(match.start(), match.end())):
                continue
            keys = _TAG_KEYS.get(key, ("owner",))
            span = Span(match.start(), match.end(), match.group(0))
            parsed.tag_phrases.append(TagPhrase(keys, value, span))
            taken.append(span)
    parsed.tag_phrases.sort(key=lambda t: t.span.start)


def _names(parsed: ParsedPrompt, free) -> None:
    """Words shaped like a resource's name or id (a dash, underscore, dot or digit among letters), which are
    not places, values or ordinary dashed words: what the operator names when naming a resource."""
    names: list[Span] = list(parsed.protected) + list(parsed.spaced_names)
    for match in _WORD.finditer(parsed.text):
        word = match.group(0).rstrip(".:")
        start, end = match.start(), match.start() + len(word)
        if not free(start, end) or any(n.start <= start and end <= n.end for n in names):
            continue
        if any(p.span.start <= start and end <= p.span.end for p in parsed.places):
            continue
        shaped = re.search(r"[-_]", word) or (re.search(r"\d", word) and re.search(r"[a-z]", word))
        if not shaped or len(word) < 4 or word in _DASHED_WORDS or _VALUE_SHAPED.match(word):
            continue
        if _ACCOUNT_ID.fullmatch(word) or REGION_IN_TEXT.fullmatch(word) or SHORT_REGION.fullmatch(word):
            continue
        if _NAMING_CUE.search(parsed.text[max(0, start - 40):start]):
            continue
        names.append(Span(start, end, word))
    parsed.names = sorted(names, key=lambda s: s.start)


def question_form(text: str) -> Question | None:
    """Is the prompt a question (and which kind), as opposed to a request? "can you stop it?" and "could
    versioning be switched on?" are requests; "which instances are stopped?" and "is the bastion running"
    are questions, with or without the question mark."""
    low = _INTERJECTION.sub("", normalise(text)).strip()
    if not low or _REQUEST.search(low):
        return None
    if _COUNT.search(low):
        return Question("count")
    if _WHICH_THINGS.match(low) or re.match(r"(?:are\s+there|do\s+we\s+have|have\s+we\s+got|is\s+there|any)\b", low):
        return Question("which")
    if re.match(_AUX + r"\b", low) or re.match(r"(?:do|don't)\s+(?:we|you|i|they|any|our|my)\b", low):
        return Question("yes_no")
    if re.match(_WH + r"\b", low) or low.endswith("?") or _ASKING.match(low):
        return Question("what")
    return None


_PLURAL_FORMS = sorted((f for f in _NOUN_TYPES if f not in _SINGULAR_NOUNS), key=len, reverse=True)
# "which instances ...", "what three databases ...": a question about a set of resources of a type.
_WHICH_THINGS = re.compile(r"(?:which|what)\s+(?:\w+\s+){0,3}?(?:" + "|".join(map(re.escape, _PLURAL_FORMS)) + r")\b")
