"""Hybrid resource lookup over the local estate: exact id/ARN/name, fuzzy names, words, meaning, fused
into one ranking, with tag expressions and account/region/type/state hints as filters. Every hit says why
it matched; a query nothing matches well enough gets no hits (and, where it helps, a note saying why).

Everything is asked of the store's Qdrant Edge shard (app.estate.resource_store), so a resource is found
the moment its listing is written and nothing is loaded into memory first:

* filters (account, region, type, state, tag expressions) are Edge filters on payload indexes;
* exact ids, ARNs and names are the ``keys`` keyword index; names typed with spaces the ``spaced`` one;
* words are Edge's BM25 sparse vectors, meaning its dense vectors (HNSW once built, exact scan before);
* fuzzy names: Edge's ``names`` trigram vectors pick candidates, rapidfuzz scores them (Edge has no edit
  distance; rapidfuzz over the few candidates costs microseconds, over a name column of a million
  resources it cost tens of milliseconds and 100+ MB, measured in bench/bench_lookup.py).

Each signal proposes its best candidates inside the filters; every candidate then gets every signal's
score (Edge answers a query restricted to the candidate ids), and the weighted sum ranks them.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from qdrant_edge import (FieldCondition, Filter, HasIdCondition, MatchAny, MatchPrefix, MatchValue, Query,
                         QueryBatchRequest, QueryRequest, ScrollRequest, SparseVector)
from rapidfuzz import fuzz, process

from agent.lexicon import (ENVIRONMENT_WORDS, FOREIGN_PHRASES, FOREIGN_SERVICES, LINK_PHRASES, REGION_WORDS,
                           STATE_WORDS, exclusions, phrase_alternation, types_in)
from agent.mentions import is_excluded, says_key
from agent.protocol import IdentifiedResource
from agent.prompt import parse_prompt
from agent.text import fold_accents, last_segment, normalise
from app.estate.documents import name_words
from app.estate.resource_store import (DENSE, MAX_SPACED_WORDS, NAMES, WORDS, ResourceStore, document_of,
                                       names_vector, spaced_name, words_vector)
from app.estate.tagexpr import SYNONYM_WORDS, Node, TagExprError, Term, canon, split_query

__all__ = ["Hit", "LookupIndex", "ParsedQuery", "QueryError", "SearchResult", "spaced_name"]

_MAX_SPACED_WORDS = MAX_SPACED_WORDS
# How many candidates each signal proposes inside the filters (words, meaning, names).
CANDIDATES = 30
NAME_CANDIDATES = 30
NAME_POOL = 150  # names asked without the filter, then filtered
# A hit needs at least this much evidence (the weighted sum below): a lone weak fuzzy or semantic
# resemblance is not a match ("zzzzqqq-nothing" has none). Calibrated on tests/eval_lookup and nonsense
# queries (tests/test_lookup.py).
SCORE_FLOOR = 0.18
# A query that is one name-shaped token ("kafka-broker-01") matches a name at WRatio >= 70 or not at all.
IDENTIFIER_FUZZY_FLOOR = 0.25
# A pure filter or listing reads at most this many matches to order them by name.
MAX_LISTED_SCAN = 20000
NEAR_EXACT = 0.9  # a multi-word name typed with spaces and a typo: below a name typed right, above a word's 0.4
_FILLER = frozenset("a an the in on at of for with all my our show find me list get which where what is are any "
                    "resources resource please that those these".split())
_QUERY_WORD = re.compile(r"[a-z0-9][a-z0-9_.:/-]*")
# Words with a digit, dash, dot, colon or slash look like names and ids (orders-db, i-0a1b, an ARN).
_IDENTIFIER_SHAPED = re.compile(r"[-_.:/0-9]")
# The word tables every stage reads (agent.lexicon); kept under these names for the search's own use.
_REGION_WORDS = REGION_WORDS
# What the sync reads (app.estate.collectors; named here so that a note can say it without importing boto3),
# and the words of services it does not: a search for those has no answer in the index.
SYNCED_SERVICES = ("EC2", "EBS", "RDS", "S3", "Lambda", "DynamoDB", "ECS", "ELB", "Auto Scaling", "SQS", "SNS", "EKS",
                   "CloudFormation", "IAM roles")
# The cache engines are ElastiCache's, which the sync does not read. DocumentDB and Neptune are not here: their
# clusters are RDS clusters (DescribeDBClusters lists them, engine "docdb" or "neptune") and the sync reads them.
_NOT_SYNCED_WORDS = FOREIGN_SERVICES | {"redis", "memcached", "valkey"}
# "db instance", "database instances", "rds instance": an instance, as opposed to an Aurora cluster.
_DB_INSTANCE = re.compile(r"\b(?:db|database|rds|postgres(?:ql)?|mysql|mariadb|aurora)\s+instances?\b")
# key=value followed by up to three more words that are not themselves a term or a connective.
_SPACED_TAG_VALUE = re.compile(r"([A-Za-z0-9_.:/@+-]+)\s*(!=|=)\s*([A-Za-z0-9_.:/@+-]+)"
                               r"((?:\s+(?!(?:AND|OR|NOT)\b)[A-Za-z0-9_.@+-]+(?![\w.@+-]*\s*!?=)){1,3})")
# "<what> attached to|of|on|used by <name>" and "<name>'s <what>": a search for what a resource is linked to.
# Besides the shared link phrases, the words a search's head may use for any relation either way ("the lambda
# triggered by X", "the services in cluster X"): a search only reads, so it may take more than the planner.
_LINK_WORDS = phrase_alternation(LINK_PHRASES + ("used by", "behind", "in front of", "backing", "belonging to",
                                                 "triggered by", "subscribed to", "in cluster", "in group", "in stack",
                                                 "of", "on", "for", "in"))
_RELATED = re.compile(r"^(?:the\s+|a\s+|an\s+)?(?P<head>(?:[\w-]+\s+){0,3}?[\w-]+)\s+(?:that(?:'s| is| are)\s+)?"
                      + _LINK_WORDS + r"\s+(?:the\s+)?(?P<name>[\w.:/-]+)\s*$")
_COMPOUND = re.compile(r"^(?P<name>[\w.:/-]*[-_.0-9][\w.:/-]*)\s+(?P<head>(?:[\w-]+\s+){0,2}[\w-]+)\s*$")
_POSSESSIVE = re.compile(r"^(?P<name>[\w.:/-]+)'s\s+(?P<head>(?:[\w-]+\s+){0,3}[\w-]+)\s*$")
_STATE_WORDS = STATE_WORDS
# Words operators use for things whose names say it differently: expanded for words and meaning.
_QUERY_SYNONYMS = {"dead letter": "dlq", "dead-letter": "dlq", "jump host": "bastion jumpbox", "jumpbox": "bastion",
                   "jump box": "bastion jumpbox", "k8s": "eks kubernetes", "kubernetes": "eks", "db": "database",
                   "pg": "postgres", "postgresql": "postgres", "ddb": "dynamodb", "fn": "function lambda",
                   "cert": "certificate", "creds": "credentials secret", "password": "secret credentials"}
# An environment as the env tag's canonical value (app.estate.tagexpr compares through its synonyms).
_ENV_TAG_VALUES = {"production": "prod", "staging": "stg", "development": "dev", "nonprod": "nonprod"}
# The tag keys that say a resource's environment (keys compare lower-cased).
_ENV_TAG_KEYS = ("env", "environment", "stage", "tier")
_ENV_WORDS = {word: _ENV_TAG_VALUES[env] for word, env in ENVIRONMENT_WORDS.items()}



class QueryError(ValueError):
    pass


@dataclass
class Hit:
    id: str
    score: float
    why: list[str]
    row: int
    components: dict[str, float] = field(default_factory=dict)


@dataclass
class ParsedQuery:
    text: str
    tag_expr: Node | None
    accounts: set[str]
    regions: set[str]
    types: set[str]
    environment: str | None
    hints: list[str]
    state: str | None = None
    spaced: frozenset[str] = frozenset()  # names the query typed with spaces ("orders api" -> orders-api)


@dataclass
class SearchResult:
    """The hits, notes for the operator ("no European region is synced"), and whether meaning vectors
    are still being made for part of the estate (semantic results partial)."""
    hits: list[Hit]
    notes: list[str] = field(default_factory=list)
    semantic_partial: bool = False
    pending: int = 0


@dataclass
class _Candidate:
    """What one point contributes to a search, signal by signal."""
    pid: int
    exact: float = 0.0
    exact_key: str = ""
    lexical: float | None = None
    semantic: float | None = None
    named: bool = False  # proposed by the names signal: its name is read and fuzzy-scored
    name: str = ""
    env: bool = False
    state: bool = False
    payload: dict[str, Any] | None = None


class _Cached:
    """A value recomputed when the store has been written since, at most once a second (during a sync
    every scope write bumps the generation; facets over 100k points cost ~10-30 ms)."""
    def __init__(self, compute):
        self.compute = compute
        self.lock = threading.Lock()
        self.value = None
        self.generation = -1
        self.at = 0.0

    def get(self, generation: int):
        if self.generation != generation and (self.value is None or time.monotonic() - self.at > 1.0):
            with self.lock:
                if self.generation != generation:
                    self.value, self.generation, self.at = self.compute(), generation, time.monotonic()
        return self.value


class _ExactKeys:
    """The exact-name table as parse() reads it (``key in exact``, ``exact.get(key)``): point ids whose
    id, ARN, name or API id is ``key``, answered by the shard's ``keys`` index."""
    def __init__(self, index: "LookupIndex"):
        self.index = index

    def get(self, key: str, default=None) -> list[int] | None:
        return self.index._exact_rows(key) or default

    def __contains__(self, key: str) -> bool:
        return bool(self.index._exact_rows(key))


class _Regions:
    """parse()'s ``_codes["region"].values``: the synced regions (a facet of the shard)."""
    def __init__(self, index: "LookupIndex"):
        self.index = index

    @property
    def values(self) -> list[str]:
        return self.index._facets()["regions"]


class _Column:
    """One payload field by row (a hit's ``row`` is its point id): ``index.types[hit.row]``. Values come
    from the search that returned the hit (cached), else from the shard."""
    def __init__(self, lookup: "LookupIndex", field_name: str):
        self.lookup = lookup
        self.field = field_name

    def __getitem__(self, row: int):
        return self.lookup._row(int(row)).get(self.field)

    def __len__(self) -> int:
        return len(self.lookup)

    def __iter__(self):
        """Iterating the account columns yields each account once, aligned between ``account_names`` and
        ``account_ids`` (``zip`` of the two maps names to ids, as callers use it); other columns page
        through the shard."""
        if self.field in ("account_name", "account_id"):
            pairs = self.lookup._facets()["accounts"]
            return iter([p[0] if self.field == "account_id" else p[1] for p in pairs])
        return (payload.get(self.field) for _, payload in self.lookup.store._scroll(None, [self.field]))


_ROW_FIELDS = ["id", "name", "name_low", "resource_type", "account_id", "account_name", "region", "state",
               "state_low", "tags", "scope", "keys", "spaced"]
_REGION_ADJECTIVES = {"europe": "European", "eu": "European", "asia": "Asian", "canada": "Canadian",
                      "middle east": "Middle Eastern", "africa": "African", "south america": "South American"}


class LookupIndex:
    """Searches over a ResourceStore's shard. Cheap to make (nothing is loaded); one per store is enough,
    and it may be shared by threads."""
    def __init__(self, store: ResourceStore, embed_query=None):
        self.store = store
        self.embed_query = embed_query
        self.exact = _ExactKeys(self)
        self._codes = {"region": _Regions(self)}
        self._exact_cache: dict[tuple[int, str], list[int]] = {}
        self._rows: dict[int, dict[str, Any]] = {}
        self._facet_cache = _Cached(self._compute_facets)
        self.ids = _Column(self, "id")
        self.names = _Column(self, "name")
        self.names_low = _Column(self, "name_low")
        self.types = _Column(self, "resource_type")
        self.account_ids = _Column(self, "account_id")
        self.account_names = _Column(self, "account_name")
        self.regions = _Column(self, "region")
        self.states = _Column(self, "state")
        self.tags = _Column(self, "tags")

    @classmethod
    def load(cls, store: ResourceStore, embed_query) -> "LookupIndex":
        """The index over ``store`` (kept for callers of the in-memory version; nothing is loaded now)."""
        return cls(store, embed_query)

    def __len__(self) -> int:
        return self.store.count()

    # -- what parse() and the columns read ------------------------------------------------------------
    def _exact_rows(self, key: str) -> list[int]:
        if not key:
            return []
        cache_key = (self.store.generation, key)
        rows = self._exact_cache.get(cache_key)
        if rows is None:
            records, _ = self.store.shard.scroll(ScrollRequest(
                limit=1000, filter=Filter(must=[FieldCondition(key="keys", match=MatchValue(key))]),
                with_payload=False, with_vector=False))
            rows = [r.id for r in records]
            if len(self._exact_cache) > 4096:
                self._exact_cache.clear()
            self._exact_cache[cache_key] = rows
        return rows

    def _compute_facets(self) -> dict[str, Any]:
        groups = [str(value).split("|") for value, _ in self.store.facet("group")]
        accounts = sorted({(g[0], g[1]) for g in groups if len(g) == 5})
        return {"regions": sorted({g[2] for g in groups if len(g) == 5}), "accounts": accounts}

    def _facets(self) -> dict[str, Any]:
        return self._facet_cache.get(self.store.generation)

    @property
    def _known_accounts(self) -> dict[str, str]:
        return {normalise(name): account_id for account_id, name in self._facets()["accounts"]}

    def accounts(self) -> dict[str, str]:
        """Account name -> account id, every account in the index."""
        return {name: account_id for account_id, name in self._facets()["accounts"]}

    def _row(self, pid: int) -> dict[str, Any]:
        row = self._rows.get(pid)
        if row is None:
            self._remember(self.store.shard.retrieve([pid], with_payload=_ROW_FIELDS, with_vector=False))
            row = self._rows.get(pid, {})
        return row

    def _remember(self, records) -> None:
        if len(self._rows) > 20000:
            self._rows.clear()
        for record in records:
            self._rows[record.id] = record.payload or {}

    def rows_named(self, name_low: str) -> list[int]:
        """Rows (point ids) of the resources whose normalised name is ``name_low`` (autocomplete's places)."""
        return [pid for pid, payload in self._scroll_rows(Filter(must=[FieldCondition(key="name_low",
                                                                                      match=MatchValue(name_low))]))]

    def _scroll_rows(self, flt, limit: int | None = None):
        out = []
        for pid, payload in self.store._scroll(flt, _ROW_FIELDS):
            self._rows[pid] = payload
            out.append((pid, payload))
            if limit is not None and len(out) >= limit:
                break
        return out

    # -- query parsing --------------------------------------------------------------------------
    def parse(self, query: str) -> ParsedQuery:
        """The query's filters and free text, read by agent.prompt's parser (the planner reads the same words
        with the same tables): tag expressions and tag phrases ("for app billing" -> app=billing), regions
        and their place names ("oregon", "usw2", "europe" -> the synced eu-* regions), accounts by name,
        alias ("prod") or id, the environment, a state word and the type nouns; a name typed with spaces
        ("the redis cache box") becomes the name (redis-cache-box), whose type words are not type hints."""
        query = self._quote_spaced_tag_values(query)
        try:
            expr, rest = split_query(query)
        except TagExprError as exc:
            raise QueryError(str(exc)) from None
        known_regions = [str(r) for r in self._codes["region"].values]
        parsed = parse_prompt(rest, accounts=self._known_accounts, regions=known_regions,
                              is_name=lambda word: bool(self.exact.get(word)))
        hints: list[str] = []
        regions: set[str] = set()
        accounts: set[str] = set()
        dropped = []
        for place in parsed.places:
            if place.kind == "account":
                accounts.add(place.value)
                hints.append(f"account {place.word}")
            else:
                # A place name whose regions are not synced stays in the text: the search says so.
                matching = ({place.value} if place.word == place.value
                            else {r for r in known_regions if r.startswith(place.value)})
                if not matching:
                    continue
                regions |= matching
                hints.append(f"region {place.word}")
            if not place.embedded:  # a place read from inside an ARN or URL stays part of it
                dropped.append(place.span)
        phrases = [Node("or", tuple(Node("term", term=Term(key, tag.value, False)) for key in tag.keys))
                   if len(tag.keys) > 1 else Node("term", term=Term(tag.keys[0], tag.value, False))
                   for tag in parsed.tag_phrases]
        if phrases:
            expr = Node("and", tuple(([expr] if expr is not None else []) + phrases)) \
                if expr is not None or len(phrases) > 1 else phrases[0]
            dropped += [tag.span for tag in parsed.tag_phrases]
        # A name typed with spaces is searched as the name itself.
        chars = list(parsed.text)
        for span in sorted(parsed.spaced_names, key=lambda s: -s.start):
            chars[span.start:span.end] = list(span.text.ljust(span.end - span.start))
        for span in dropped:
            chars[span.start:span.end] = " " * (span.end - span.start)
        text = re.sub(r"\s+", " ", "".join(chars)).strip()
        environment = _ENV_TAG_VALUES.get(parsed.environment or "")
        types = parsed.head_types if not self.exact.get(text) else set()
        if "rds_db_instance" in types and not _DB_INSTANCE.search(text):
            types = types | {"rds_db_cluster"}  # "the inventory db" may be an Aurora cluster; "db instance" is not
        if types:
            hints.append("type " + "/".join(sorted(types)))
        return ParsedQuery(text=text, tag_expr=expr, accounts=accounts, regions=regions, types=types,
                           environment=environment, hints=hints, state=parsed.state,
                           spaced=frozenset(span.text for span in parsed.spaced_names))

    def _quote_spaced_tag_values(self, query: str) -> str:
        """"Owner=WMS Team": a tag value with spaces is read as one value when the index holds that tag so
        (the longest such value wins); otherwise the words after the value stay free text ("env=prod
        database")."""
        def quote(match: re.Match[str]) -> str:
            key, op, value, more = match.group(1), match.group(2), match.group(3), match.group(4).split()
            for n in range(len(more), 0, -1):
                spaced = " ".join([value, *more[:n]])
                pair = f"{key.lower()}={canon(spaced)}"
                if self._any([FieldCondition(key="tag_pairs", match=MatchValue(pair))]):
                    rest = " ".join(more[n:])
                    return f'{key}{op}"{spaced}"' + (f" {rest}" if rest else "")
            return match.group(0)

        return _SPACED_TAG_VALUE.sub(quote, query)

    # -- search ---------------------------------------------------------------------------------
    def search(self, query: str, *, limit: int = 10, account: str | None = None,
               resource_type: str | None = None, every_match: bool = False) -> list[Hit]:
        """Ranked hits for ``query`` (:meth:`search_result` also says why nothing matched)."""
        return self.search_result(query, limit=limit, account=account, resource_type=resource_type,
                                  every_match=every_match).hits

    def search_result(self, query: str, *, limit: int = 10, account: str | None = None,
                      resource_type: str | None = None, every_match: bool = False) -> SearchResult:
        """Ranked hits for ``query``, notes, and whether semantic results are partial. ``every_match``:
        every document the filters let through is a hit, as for a pure filter (a listing: "list the
        databases in staging"). Raises QueryError for an empty query or a bad tag expression."""
        if not query or not query.strip():
            raise QueryError("the search is empty: type a name, an id, some words or a tag expression (env=prod)")
        query, excluded = _negations(query)
        if not excluded:
            return self._search_result(query, limit, account, resource_type, every_match)
        # A listing ranks every match before leaving some out ("instances that aren't running" among hundreds
        # of running ones); a search asks for a few more than it shows.
        wider = MAX_LISTED_SCAN if every_match else limit + _EXCLUSION_HEADROOM
        result = self._search_result(query, wider, account, resource_type, every_match)
        kept = [hit for hit in result.hits if not self._carries(hit, excluded)]
        if result.hits and not kept:
            said = " or ".join(repr(w) for w in excluded)
            result.notes.append(f"every match carries {said}, which was excluded")
        result.hits = kept[:limit]
        return result

    def _carries(self, hit: Hit, words: list[str]) -> bool:
        """Whether the prompt's exclusion of ``words`` leaves ``hit`` out (agent.mentions.is_excluded: its name or
        a part of it, its state, environment, region or account), or a word of its camelCase or snake_case name."""
        row = self._row(hit.row)
        name = str(row.get("name") or "")
        if set(name_words(name).split()) & set(words):
            return True
        resource = IdentifiedResource(resource_type=str(row.get("resource_type")), resource_id=name, name=name,
                                      account_id=row.get("account_id"), account_name=row.get("account_name"),
                                      region=row.get("region"), current_state=row.get("state"),
                                      tags=row.get("tags") or {})
        return is_excluded(resource, words)

    def _search_result(self, query: str, limit: int, account: str | None, resource_type: str | None,
                       every_match: bool) -> SearchResult:
        if not query.strip():
            raise QueryError("the search is empty once its exclusions are set apart: say what to look for")
        q = self.parse(query)
        unsynced = self._unsynced_places(q)
        if unsynced:
            return SearchResult([], notes=unsynced)
        foreign = self._unsynced_services(q)
        if foreign:
            return SearchResult([], notes=foreign)
        conditions = self._conditions(q, account, resource_type, every_match)
        related = self._related_result(q, conditions, limit)
        if related is not None:
            return related
        all_words = _QUERY_WORD.findall(q.text)
        if q.types:
            # A resource named exactly stays a candidate whatever the type words say ("instance
            # refresh on web-asg" is about the group called web-asg, not an instance).
            # A name typed with spaces is weaker: "volume left over from the old orders api" asks for a volume,
            # whatever the ECS service called orders-api.
            typed = conditions + [self._typed(q.types, [w for w in all_words if w not in q.spaced])]
            if self._any(typed):
                result = self._search(q, typed, all_words, limit, every_match)
                if result.hits:
                    return result
                # Nothing of those types matches well enough: the type words may have been read
                # wrongly ("machine learning ..." is not about instances); try every type.
        return self._search(q, conditions, all_words, limit, every_match)

    def _unsynced_services(self, q: ParsedQuery) -> list[str]:
        """A note when the query asks for a service the sync does not read ("elasticache redis cluster"):
        nothing in the index is one, and a resource that merely resembles the words would be a wrong answer.
        A word some resource does carry (an instance named kafka-1, a tag app=redis) is searched as usual."""
        text = fold_accents(q.text)
        found = [(m.start(), m.group(0)) for m in FOREIGN_PHRASES.finditer(text)]
        found += [(m.start(), m.group(0)) for m in re.finditer(r"(?<![\w-])[a-z0-9]+(?![\w-])", text)
                  if m.group(0) in _NOT_SYNCED_WORDS]
        # Only what the query is about: "lambda that invalidates cloudfront" asks for a lambda.
        words = [w for start, w in sorted(found) if not types_in(text[:start])]
        missing = [w for w in dict.fromkeys(words) if not self._in_words(w)]
        if not missing:
            return []
        return [f"{missing[0]} is not a service the sync reads, and no resource in the index mentions it; "
                f"synced: {', '.join(SYNCED_SERVICES)}"]

    def _in_words(self, word: str) -> bool:
        """Does any resource's words text (name, tags, facts) hold ``word``?"""
        vector = words_vector(word, query=True)
        if not vector.indices:
            return False
        points = self.store.shard.query_batch(QueryBatchRequest([
            QueryRequest(limit=1, query=Query.Nearest(SparseVector([i], [1.0]), using=WORDS)) for i in vector.indices]))
        return all(found for found in points)

    def _related_result(self, q: ParsedQuery, conditions: list, limit: int) -> SearchResult | None:
        """"disk attached to build-agent-1", "build-agent-1's volumes", "db-07's replicas", "the dlq of
        orders-queue", "primary of db-07-ro": what a named resource's relations link it to. The head words
        either spell one of the named resource's relations (replicas: read_replicas; dlq: dead_letter_queue;
        primary: source_instance), whose values are the answer, or name a type, whose resources linked to it
        either way are (an instance lists its volumes, a volume the instance it is attached to). None when
        the query is not of that shape or nothing is linked, so that the ordinary search answers."""
        match = _RELATED.match(q.text) or _POSSESSIVE.match(q.text)
        compound = None if match else _COMPOUND.match(q.text)  # "db-07 replica": only a relation's words
        match = match or compound
        if not match:
            return None
        name = match.group("name").strip(" .?'")
        owners = self._exact_rows(normalise(name))
        head = _QUERY_WORD.findall(match.group("head"))
        if not owners or not head:
            return None
        # The head's words as agent.mentions.says_key reads a relation's name, loosened for a search (a
        # noun alone, "primary" for source), the query's filler dropped.
        spoken = [w for w in head if w not in _FILLER]
        linked: set[str] = set()
        by_relation = False
        accounts: set[str] = set()
        for pid in owners:
            owner = document_of(self._payload(pid))
            accounts.add(owner.account_id)
            said = [key for key in owner.relations if says_key(spoken, key, from_end=True, loose=True) is not None]
            if said:
                by_relation = True
                linked |= {normalise(str(v)) for key in said for v in owner.relations[key] or []}
                continue
            if compound or not q.types or owner.resource_type in q.types:
                continue  # "the instance of web-1" names the instance itself
            keys = {normalise(owner.id), normalise(owner.resource_id), normalise(owner.name)}
            linked |= {normalise(str(v)) for values in owner.relations.values() for v in values or []}
            scope = [FieldCondition(key="account_id", match=MatchValue(owner.account_id)),
                     FieldCondition(key="resource_type", match=MatchAny(sorted(q.types)))]
            for n, (_, payload) in enumerate(self.store._scroll(Filter(must=scope), ["id", "document"])):
                if n >= MAX_LISTED_SCAN:
                    break
                doc = document_of(payload)
                if any(normalise(str(v)) in keys for values in doc.relations.values() for v in values or []):
                    linked.add(normalise(doc.id))
        linked |= {normalise(last_segment(v)) for v in list(linked)}  # an ARN or URL names by its last part too
        if not linked:
            return None
        # An ARN or URL names one resource; a bare name ("lobby-api") only in the owner's account.
        precise = sorted(v for v in linked if ":" in v or "/" in v)
        bare = sorted(v for v in linked if ":" not in v and "/" not in v)
        either = [FieldCondition(key="keys", match=MatchAny(precise))] if precise else []
        if bare:
            either.append(Filter(must=[FieldCondition(key="keys", match=MatchAny(bare)),
                                       FieldCondition(key="account_id", match=MatchAny(sorted(accounts)))]))
        restricted = conditions + [Filter(should=either)]
        if q.types and not by_relation:
            restricted.append(self._typed(q.types, []))
        if not self._any(restricted):
            return None
        result = self._search(q, restricted, [] if by_relation else head, limit, every_match=True)
        for hit in result.hits:
            hit.why.insert(0, f"linked to {name}")
        return result

    def _payload(self, pid: int) -> dict[str, Any]:
        records = self.store.shard.retrieve([pid], with_payload=True, with_vector=False)
        return records[0].payload if records else {}

    def _search(self, q: ParsedQuery, conditions: list, all_words: list[str], limit: int,
                every_match: bool) -> SearchResult:

        flt = Filter(must=conditions) if conditions else None
        words = [w for w in all_words if w not in _FILLER]
        free = " ".join(words)
        listing = not free or every_match  # a pure filter ("env=prod AND app=main"): every match is a hit
        candidates: dict[int, _Candidate] = {}
        semantic_used = False
        norm, words_query, query_vector = 0.0, None, None
        if free:
            expanded = free
            for phrase, extra in _QUERY_SYNONYMS.items():
                if re.search(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", free):
                    expanded += " " + extra
            self._exact_candidates(free, words, all_words, flt, candidates)
            norm, words_query, query_vector = self._signal_candidates(free, expanded, flt, candidates)
            semantic_used = query_vector is not None
        if listing:
            for pid, payload in self._scroll_rows(flt, MAX_LISTED_SCAN):
                candidates.setdefault(pid, _Candidate(pid)).payload = payload
        pending = self.store.semantic_pending() if semantic_used else 0
        notes = [f"semantic results are partial: {pending} resources are not embedded yet (found by name, "
                 "tags and words only)"] if pending else []
        if not candidates:
            return SearchResult([], notes=notes, semantic_partial=bool(pending), pending=pending)
        self._complete(q, candidates, words_query, query_vector)
        hits = self._rank(q, free, candidates, norm, listing, limit)
        return SearchResult(hits, notes=notes, semantic_partial=bool(pending), pending=pending)

    def _conditions(self, q: ParsedQuery, account: str | None, resource_type: str | None, every_match: bool) -> list:
        conditions: list = []
        if account:
            conditions.append(Filter(should=[FieldCondition(key="account_id", match=MatchValue(account)),
                                             FieldCondition(key="account_name", match=MatchValue(account))]))
        if resource_type:
            conditions.append(FieldCondition(key="resource_type", match=MatchValue(resource_type)))
        if q.accounts:
            conditions.append(FieldCondition(key="account_id", match=MatchAny(sorted(q.accounts))))
        if q.regions:
            conditions.append(FieldCondition(key="region", match=MatchAny(sorted({*q.regions, "global"}))))
        if q.tag_expr is not None:
            conditions.append(_tag_filter(q.tag_expr))
        if every_match and q.state:  # "list the stopped instances": the state selects, it does not just rank
            conditions.append(FieldCondition(key="state_low", match=MatchValue(q.state)))
        return conditions

    @staticmethod
    def _typed(types: set[str], all_words: list[str]):
        either = [FieldCondition(key="resource_type", match=MatchAny(sorted(types)))]
        named = sorted({w for w in all_words if _IDENTIFIER_SHAPED.search(w)})
        if named:
            either.append(FieldCondition(key="keys", match=MatchAny(named)))
        return Filter(should=either)

    def _any(self, conditions: list) -> bool:
        records, _ = self.store.shard.scroll(ScrollRequest(limit=1, filter=Filter(must=conditions),
                                                           with_payload=False, with_vector=False))
        return bool(records)

    def _unsynced_places(self, q: ParsedQuery) -> list[str]:
        """Notes for places asked for by name ("in europe") where no synced region lies: such a query has no
        hits (answering with us-* resources would be wrong). The parser leaves such words in the text."""
        explicit = getattr(q, "unsynced_regions", None)
        if explicit is not None:
            return [f"no region matching {word!r} is synced" for word in explicit]
        synced = self._facets()["regions"]
        notes = []
        for word, prefix in _REGION_WORDS.items():
            if not re.search(r"\b(?:in|from|across)\s+(?:the\s+)?" + word + r"(?![\w-])", fold_accents(q.text)):
                continue
            if self.exact.get(word) or any(str(r).startswith(prefix) for r in synced):
                continue
            adjective = _REGION_ADJECTIVES.get(word)
            place = f"no {adjective} region" if adjective else f"{prefix.rstrip('-')} ({word})"
            verb = "is synced" if adjective else "is not synced"
            notes.append(f"{place} {verb}" + (f" ({prefix}*)" if adjective else "") +
                         f"; synced regions: {', '.join(synced) or 'none'}")
        return notes

    def _exact_candidates(self, free: str, words: list[str], all_words: list[str], flt, out: dict) -> None:
        """Points named exactly: the whole query or an identifier-shaped word (orders-db, i-0a1b, an ARN)
        is decisive (1.0); a plain word that happens to be a name ("orders") counts for part (0.4). A name
        typed with spaces for its dashes is as exact as the name, when all its words stand in the query
        in order: "the payments queue" names payments-queue, not payments-queue-dlq."""
        keys = sorted({free, *words})
        phrases = sorted({" ".join(all_words[start:start + size])
                          for size in range(2, min(MAX_SPACED_WORDS, len(all_words)) + 1)
                          for start in range(len(all_words) - size + 1)})
        either = [FieldCondition(key="keys", match=MatchAny(keys))]
        if phrases:
            either.append(FieldCondition(key="spaced", match=MatchAny(phrases)))
        must = [Filter(should=either)] + ([flt] if flt is not None else [])
        records, _ = self.store.shard.scroll(ScrollRequest(limit=1000, filter=Filter(must=must), with_payload=_ROW_FIELDS,
                                                           with_vector=False))
        wanted, spaced = set(keys), set(phrases)
        for record in records:
            payload = record.payload or {}
            self._rows[record.id] = payload
            candidate = out.setdefault(record.id, _Candidate(record.id))
            candidate.payload = payload
            for key in sorted(wanted.intersection(payload.get("keys") or [])):
                weight = 1.0 if key == free or _IDENTIFIER_SHAPED.search(key) else 0.4
                if weight > candidate.exact:
                    candidate.exact, candidate.exact_key = weight, key
            if payload.get("spaced") in spaced and candidate.exact < 1.0:
                candidate.exact, candidate.exact_key = 1.0, payload["spaced"]

    def _signal_candidates(self, free: str, expanded: str, flt, out: dict):
        """The best few of each signal inside the filters (one batch: words, meaning, names), and the
        normaliser of the words scores: the sum over query tokens of the best score any document gets
        for that token alone, so that 1.0 means "every word, as strongly as anywhere".

        Names are asked without the filter and filtered after (one id-restricted scroll): Edge's sparse
        search with a payload filter cost ~10x the unfiltered one at 10k points (0.47 vs 0.05 ms)."""
        words_query = words_vector(expanded, query=True)
        names_query = names_vector(free)
        requests, kinds = [], []
        if words_query.indices:
            requests.append(QueryRequest(limit=CANDIDATES, query=Query.Nearest(words_query, using=WORDS), filter=flt))
            kinds.append("words")
            for token in words_query.indices:
                requests.append(QueryRequest(limit=1, query=Query.Nearest(SparseVector([token], [1.0]), using=WORDS)))
                kinds.append("norm")
        if names_query.indices:
            requests.append(QueryRequest(limit=NAME_POOL if flt is not None else NAME_CANDIDATES,
                                         query=Query.Nearest(names_query, using=NAMES)))
            kinds.append("names")
        query_vector = None
        if self.embed_query is not None:
            query_vector = [float(x) for x in self.embed_query(expanded)]
            requests.append(QueryRequest(limit=CANDIDATES, query=Query.Nearest(query_vector, using=DENSE), filter=flt))
            kinds.append("dense")
        if not requests:
            return 0.0, words_query, None
        norm = 0.0
        named: list[int] = []
        for kind, points in zip(kinds, self.store.shard.query_batch(QueryBatchRequest(requests))):
            if kind == "norm":
                norm += points[0].score if points else 0.0
            elif kind == "names":
                named = [point.id for point in points]
            else:
                for point in points:
                    candidate = out.setdefault(point.id, _Candidate(point.id))
                    if kind == "words":
                        candidate.lexical = point.score
                    else:
                        candidate.semantic = point.score
        if named and flt is not None:
            allowed = self._allowed(named, flt)
            kept = [pid for pid in named if pid in allowed][:NAME_CANDIDATES]
            if len(kept) < NAME_CANDIDATES and len(named) == NAME_POOL:  # a narrow filter: ask inside it
                points = self.store.shard.query(QueryRequest(limit=NAME_CANDIDATES, filter=flt,
                                                             query=Query.Nearest(names_query, using=NAMES)))
                kept = [point.id for point in points]
            named = kept
        for pid in named:
            out.setdefault(pid, _Candidate(pid)).named = True
        return norm, words_query, query_vector

    def _allowed(self, ids: list[int], flt) -> set[int]:
        """Which of ``ids`` the filter lets through (one scroll restricted to those ids, no payload)."""
        records, _ = self.store.shard.scroll(ScrollRequest(limit=len(ids), filter=Filter(must=[HasIdCondition(set(ids)), flt]),
                                                           with_payload=False, with_vector=False))
        return {r.id for r in records}

    def _complete(self, q: ParsedQuery, candidates: dict[int, _Candidate], words_query, query_vector) -> None:
        """Every candidate gets every signal: Edge scores the candidates a signal did not propose (a query
        restricted to their ids), the environment and state boosts are id-restricted filters, and only
        the names of the name candidates are read (a payload read costs ~6-9 us a point: the document
        comes with it; the hits' other fields are read once ranked)."""
        requests, kinds = [], []
        no_words = [c.pid for c in candidates.values() if c.lexical is None]
        no_meaning = [c.pid for c in candidates.values() if c.semantic is None]
        if words_query is not None and words_query.indices and no_words:
            requests.append(QueryRequest(limit=len(no_words), query=Query.Nearest(words_query, using=WORDS),
                                         filter=Filter(must=[HasIdCondition(set(no_words))])))
            kinds.append("words")
        if query_vector is not None and no_meaning:
            requests.append(QueryRequest(limit=len(no_meaning), query=Query.Nearest(query_vector, using=DENSE),
                                         filter=Filter(must=[HasIdCondition(set(no_meaning))])))
            kinds.append("dense")
        if requests:
            for kind, points in zip(kinds, self.store.shard.query_batch(QueryBatchRequest(requests))):
                for point in points:
                    if kind == "words":
                        candidates[point.id].lexical = point.score
                    else:
                        candidates[point.id].semantic = point.score
        unread = [c.pid for c in candidates.values() if c.named and c.payload is None]
        if unread:
            for record in self.store.shard.retrieve(unread, with_payload=["name_low"], with_vector=False):
                candidates[record.id].name = (record.payload or {}).get("name_low", "")
        for c in candidates.values():
            if c.payload is not None:
                c.name = c.payload.get("name_low", "")
        ids = list(candidates)
        if q.environment:  # the env tag, canonically (prod = production = live)
            values = sorted({f"{key}={canon(q.environment)}" for key in _ENV_TAG_KEYS})
            for pid in self._allowed(ids, FieldCondition(key="tag_pairs", match=MatchAny(values))):
                candidates[pid].env = True
        if q.state:
            for pid in self._allowed(ids, FieldCondition(key="state_low", match=MatchValue(q.state))):
                candidates[pid].state = True

    @staticmethod
    def _near_spaced_names(free: str, rows: list[_Candidate]) -> None:
        """A name typed with spaces and a typo ("perforse main" for perforce-main) is nearly as exact as the
        name typed right: the whole query against the name's words, one or two letters off (ratio >= 90), the
        same numbers (web server 2 is not web-server-1, a sibling, whatever the ratio). Without it a resource
        whose whole name is one of the query's words ("main") won on that word."""
        numbers = re.findall(r"\d+", free)
        for c in rows:
            if c.exact >= NEAR_EXACT:
                continue
            spaced = spaced_name(c.name)  # the spelling the exact match compares ("spaced" in the payload)
            if spaced and re.findall(r"\d+", spaced) == numbers and fuzz.ratio(free, spaced) >= 90:
                c.exact, c.exact_key = NEAR_EXACT, f"{c.name} (near)"

    def _rank(self, q: ParsedQuery, free: str, candidates: dict[int, _Candidate], norm: float, listing: bool,
              limit: int) -> list[Hit]:
        rows = list(candidates.values())
        fuzzy = [0.0] * len(rows)
        if free:
            named = [i for i, c in enumerate(rows) if c.name]
            scores = process.cdist([free], [rows[i].name for i in named], scorer=fuzz.WRatio, workers=1,
                                   score_cutoff=60)[0] if named else []
            for i, score in zip(named, scores):
                fuzzy[i] = min(1.0, max(0.0, (float(score) - 60.0) / 40.0))
            if " " in free:
                self._near_spaced_names(free, [rows[i] for i in named])
        scored = []
        literal = _literal_counter(q.tag_expr) if listing and q.tag_expr is not None else None
        lone_identifier = bool(free) and " " not in free and bool(_IDENTIFIER_SHAPED.search(free)) and not listing
        # web-server-3 where web-server-1 and -2 exist (and no web-server-03): a series member that does not exist
        siblings = lone_identifier and any(_numbered_sibling(free, c.name) for c in rows if c.name) and not any(
            _same_numbered(free, c.name) for c in rows if c.name)
        for c, fz in zip(rows, fuzzy):
            lexical = (c.lexical or 0.0) / norm if norm else 0.0
            lexical_kept = lexical if lexical > LEXICAL_KEEP else 0.0
            semantic = c.semantic or 0.0
            semantic_scaled = min(1.0, max(0.0, (semantic - 0.1) / 0.6))
            total = c.exact + 0.45 * fz + LEXICAL_WEIGHT * lexical_kept + 0.35 * semantic_scaled + \
                0.15 * c.env + 0.3 * c.state
            if lone_identifier and not c.exact and (fz < IDENTIFIER_FUZZY_FLOOR or siblings
                                                    or _numbered_sibling(free, c.name or "")):
                # "kafka-broker-01" resembles no name here (sharing "01" is no match); and when web-server-1
                # and -2 exist, web-server-3 is a member of the series that does not exist, not a typo
                continue
            if listing:
                total += 0.5
                if literal is not None and c.payload:
                    # "Environment=Development": a tag written so comes before "environment=dev" (a synonym)
                    total += 0.01 * literal(c.payload.get("tags") or {})
            elif total < SCORE_FLOOR:
                continue
            scored.append((total, c.name or f"~{c.pid}", c, fz, lexical, lexical_kept, semantic, semantic_scaled))
        scored.sort(key=lambda s: (-round(s[0], 3), s[1]))  # ties: by name
        top = scored[:limit]
        unread = [c.pid for _, _, c, *_ in top if c.payload is None]
        if unread:
            for record in self.store.shard.retrieve(unread, with_payload=_ROW_FIELDS, with_vector=False):
                candidates[record.id].payload = record.payload or {}
        hits = []
        for total, _, c, fz, lexical, lexical_kept, semantic, semantic_scaled in top:
            if not c.payload:  # deleted since it was proposed
                continue
            self._rows[c.pid] = c.payload
            why = []
            if c.exact:
                why.append(f"exact {c.exact_key}")
            if fz > 0:
                why.append(f"fuzzy name {60 + 40 * fz:.0f}")
            if lexical_kept > 0:
                why.append(f"words {lexical:.2f}")
            if semantic_scaled > 0.3:
                why.append(f"semantic {semantic:.2f}")
            if c.env:
                why.append(f"env {q.environment}")
            if c.state:
                why.append(f"state {q.state}")
            why += q.hints
            if q.tag_expr is not None:
                why.append("tags " + ", ".join(_tag_reasons(q.tag_expr, c.payload.get("tags") or {})))
            components = {"exact": float(c.exact), "fuzzy": round(fz, 3), "lexical": round(lexical, 3),
                          "semantic": round(semantic, 3)}
            hits.append(Hit(c.payload.get("id", ""), round(min(total, 2.0) / 2.0, 4), why, c.pid, components))
        return hits

    def autocomplete(self, prefix: str, limit: int = 8) -> list[str]:
        """Names starting with ``prefix`` (the shard's prefix index), then names like it (trigram
        candidates scored by rapidfuzz): cheap enough for every keystroke."""
        low = normalise(prefix).strip()
        if not low:
            return []
        records, _ = self.store.shard.scroll(ScrollRequest(
            limit=max(64, limit * 8), filter=Filter(must=[FieldCondition(key="name_low", match=MatchPrefix(low))]),
            with_payload=["name_low"], with_vector=False))
        out = sorted({(r.payload or {}).get("name_low", "") for r in records} - {""})[:limit]
        if len(out) < limit:
            query = names_vector(low)
            if query.indices:
                points = self.store.shard.query(QueryRequest(limit=limit * 8, query=Query.Nearest(query, using=NAMES),
                                                             with_payload=["name_low"]))
                names = list(dict.fromkeys((p.payload or {}).get("name_low", "") for p in points))
                for name, _, _ in process.extract(low, names, scorer=fuzz.partial_ratio, limit=limit * 2,
                                                  score_cutoff=75):
                    if name and name not in out:
                        out.append(name)
                    if len(out) >= limit:
                        break
        return out


LEXICAL_KEEP = 0.15
LEXICAL_WEIGHT = 0.35


def _skeleton(text: str) -> tuple[str, tuple[int, ...]]:
    """A name's shape with each number as # and its numbers as values: 01 and 1 are one number."""
    low = text.lower()
    return re.sub(r"\d+", "#", low), tuple(int(d) for d in re.findall(r"\d+", low))


def _numbered_sibling(query: str, name: str) -> bool:
    """Is ``name`` the same name with other numbers (gs-sky-002 for gs-sky-003)?"""
    (shape_q, numbers_q), (shape_n, numbers_n) = _skeleton(query), _skeleton(name)
    return bool(numbers_q) and shape_q == shape_n and numbers_q != numbers_n


def _same_numbered(query: str, name: str) -> bool:
    """Is ``name`` the query's name with its numbers written otherwise (orders-api-01 for orders-api-1)?"""
    (shape_q, numbers_q), (shape_n, numbers_n) = _skeleton(query), _skeleton(name)
    return bool(numbers_q) and shape_q == shape_n and numbers_q == numbers_n


def _literal_counter(node: Node):
    """A function counting the expression's terms a resource's tags hold as written (case aside), not only
    through a synonym; None when no term's value has a synonym (then every match is literal). Built once per
    search: it runs on every candidate of a pure filter (thousands at 100k)."""
    wanted = {(t.key.lower(), t.value.lower()) for t in node.terms() if not t.negated and t.value.lower() in SYNONYM_WORDS}
    if not wanted:
        return None
    keys = {k for k, _ in wanted}

    def count(tags: dict[str, str]) -> int:
        return sum(1 for k, v in tags.items() if k.lower() in keys and (k.lower(), str(v).lower()) in wanted)

    return count


def _tag_filter(node: Node):
    """A tag expression as an Edge filter over the ``tag_pairs`` / ``tag_keys`` keyword indexes."""
    if node.op == "term":
        term = node.term
        condition = (FieldCondition(key="tag_keys", match=MatchValue(term.key.lower())) if term.value == "*" else
                     FieldCondition(key="tag_pairs", match=MatchValue(f"{term.key.lower()}={canon(term.value)}")))
        return Filter(must_not=[condition]) if term.negated else Filter(must=[condition])
    if node.op == "not":
        return Filter(must_not=[_tag_filter(node.children[0])])
    children = [_tag_filter(c) for c in node.children]
    return Filter(must=children) if node.op == "and" else Filter(should=children)


def _render(node: Node) -> str:
    if node.op == "term":
        t = node.term
        return f"{t.key}{'!=' if t.negated else '='}{t.value}"
    if node.op == "not":
        return f"NOT {_render(node.children[0])}"
    joined = f" {node.op.upper()} ".join(_render(c) for c in node.children)
    return f"({joined})"


def _tag_reasons(node: Node, tags: dict[str, str]) -> list[str]:
    """Why a resource satisfies a tag expression, in its own tags: ``env=prod AND NOT app=main`` on a resource
    tagged app=orders says ``env=production, app=orders`` (never ``app=main``)."""
    lowered = {k.lower(): (k, v) for k, v in tags.items()}

    def has(term) -> str:
        key, value = lowered.get(term.key.lower(), (term.key, None))
        return f"{key}={value}" if value is not None else f"no {term.key} tag"

    if node.op == "term":
        return [has(node.term)]
    if node.op == "not":
        child = node.children[0]
        return [has(child.term)] if child.op == "term" else [f"not {_render(child)}"]
    if node.op == "and":
        return [reason for c in node.children for reason in _tag_reasons(c, tags)]
    matched = [c for c in node.children if c.matches(tags)]
    return [reason for c in matched[:1] for reason in _tag_reasons(c, tags)]


def hit_rows(result: SearchResult, store: ResourceStore) -> list[dict[str, Any]]:
    """The hits as `cloudops search --json` and ``/v1/search`` print them: the document (without its
    texts), the score, why, when its scope was last synced (``synced_at``) and whether semantic results
    were still partial when the search ran (``semantic_partial``: the estate's meaning vectors are being
    made; name, tag and word matches are complete)."""
    docs = store.documents([h.id for h in result.hits])
    return [{**docs[h.id].model_dump(mode="json", exclude={"text", "content_hash"}), "score": h.score,
             "why": h.why, "semantic_partial": result.semantic_partial} for h in result.hits if h.id in docs]


_EXCLUSION_HEADROOM = 20  # hits fetched beyond the limit when some will be left out


def _negations(query: str) -> tuple[str, list[str]]:
    """The query without its exclusions (agent.lexicon.exclusions), and the excluded words: "fifo queue in sao
    paulo that isn't the dlq" -> ("fifo queue in sao paulo", ["dlq"])."""
    found = exclusions(query)
    if not found:
        return query, []
    rest = query
    for start, end, _ in reversed(found):
        rest = rest[:start] + " " + rest[end:]
    return re.sub(r"\s+", " ", rest).strip(), [word for _, _, word in found]
