"""Hybrid resource lookup over the local estate: exact id/ARN/name, fuzzy names, lexical words,
semantic similarity, fused into one ranking, with tag expressions and account/region/type hints as
filters. Every hit says why it matched.

The index is held in memory as numpy arrays loaded from the store's SQLite table (vectors, names,
types, accounts, regions, tags) plus a hashed TF-IDF of the documents' text kept as postings (for each
hashed word, the documents holding it and their weights: a sparse matrix by column, in numpy): a brute-force
dot product over 100k x 384 float32 takes a few milliseconds, where Qdrant's embedded mode takes
most of a second. Reloaded when the store changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process
from sqlmodel import Session, select

from agent.lexicon import head_types
from agent.text import REGION_IN_TEXT, last_segment, normalise, sparse_counts
from app.estate.resource_store import ResourceRow, ResourceStore
from app.estate.tagexpr import Node, TagExprError, canon, split_query

HASH_DIM = 1 << 20
_MAX_SPACED_WORDS = 6
_SEPARATORS = re.compile(r"[-_.]+")


def spaced_name(name: str | None) -> str | None:
    """A name's spelling with spaces for its separators, when it has at least two words and they are
    plain words: payments-queue -> "payments queue"; None for one-word names and for ids."""
    if not name:
        return None
    words = [w for w in _SEPARATORS.split(normalise(name)) if w]
    if not 2 <= len(words) <= _MAX_SPACED_WORDS or not all(re.fullmatch(r"[a-z0-9]+", w) for w in words):
        return None
    return " ".join(words)
_FILLER = frozenset("a an the in on at of for with all my our show find me list get which where what is are any "
                    "resources resource please that those these".split())
_QUERY_WORD = re.compile(r"[a-z0-9][a-z0-9_.:/-]*")
# Words with a digit, dash, dot, colon or slash look like names and ids (orders-db, i-0a1b, an ARN).
_IDENTIFIER_SHAPED = re.compile(r"[-_.:/0-9]")
# Place names operators use for regions; a prefix selects every region that starts with it.
_REGION_WORDS = {"europe": "eu-", "eu": "eu-", "ireland": "eu-west-1", "london": "eu-west-2", "paris": "eu-west-3",
                 "frankfurt": "eu-central-1", "stockholm": "eu-north-1", "virginia": "us-east-1", "ohio": "us-east-2",
                 "oregon": "us-west-2", "california": "us-west-1", "tokyo": "ap-northeast-1", "seoul": "ap-northeast-2",
                 "singapore": "ap-southeast-1", "sydney": "ap-southeast-2", "mumbai": "ap-south-1", "asia": "ap-",
                 "canada": "ca-", "brazil": "sa-east-1"}
_STATE_WORDS = {"stopped": "stopped", "running": "running", "available": "available", "idle": "stopped",
                "unattached": "available", "failed": "failed"}
# Words operators use for things whose names say it differently: expanded for words and meaning.
_QUERY_SYNONYMS = {"dead letter": "dlq", "dead-letter": "dlq", "jump host": "bastion jumpbox", "jumpbox": "bastion",
                   "jump box": "bastion jumpbox", "k8s": "eks kubernetes", "kubernetes": "eks", "db": "database",
                   "pg": "postgres", "postgresql": "postgres", "ddb": "dynamodb", "fn": "function lambda",
                   "cert": "certificate", "creds": "credentials secret", "password": "secret credentials"}
_ENV_WORDS = {"prod": "prod", "production": "prod", "prd": "prod", "live": "prod", "staging": "stg", "stage": "stg",
              "dev": "dev", "development": "dev"}


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


class _Categorical:
    """A column as integer codes plus the distinct values: fast equality and membership masks."""

    def __init__(self, values):
        self.values, codes = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
        self.codes = codes.astype(np.int32)
        self.index = {v: i for i, v in enumerate(self.values)}

    def isin(self, wanted) -> np.ndarray:
        ids = [self.index[w] for w in wanted if w in self.index]
        if not ids:
            return np.zeros(len(self.codes), dtype=bool)
        return np.isin(self.codes, np.asarray(ids, dtype=np.int32))

    def eq(self, value) -> np.ndarray:
        return self.isin([value])


class LookupIndex:
    """Everything a search needs, in memory. Build with :meth:`load`."""

    def __init__(self, rows: list[dict[str, Any]], vectors: np.ndarray, embed_query):
        self.ids = [r["id"] for r in rows]
        self.names = [r["name"] for r in rows]
        self.names_low = [normalise(r["name"]) for r in rows]
        self.types = np.array([r["resource_type"] for r in rows], dtype=object)
        self.account_ids = np.array([r["account_id"] for r in rows], dtype=object)
        self.account_names = np.array([r["account_name"] for r in rows], dtype=object)
        self.regions = np.array([r["region"] for r in rows], dtype=object)
        self.states = [r["state"] for r in rows]
        # Categorical codes: comparing small integers is ~50x faster than comparing Python strings.
        self._codes = {name: _Categorical(values) for name, values in (
            ("type", self.types), ("account_id", self.account_ids), ("account_name", self.account_names),
            ("region", self.regions), ("state", np.array([(x or "").lower() for x in self.states], dtype=object)))}
        self.tags = [json.loads(r["tags"]) for r in rows]
        self.vectors = vectors
        self.embed_query = embed_query
        self.exact: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            for key in {normalise(r["id"]), normalise(r["name"]), normalise(r["resource_id"]),
                        normalise(last_segment(r["resource_id"]))}:
                self.exact.setdefault(key, []).append(i)
        # Names typed with spaces for their separators ("payments queue" for payments-queue).
        self.spaced: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            spaced = spaced_name(r["name"])
            if spaced:
                self.spaced.setdefault(spaced, []).append(i)
        self._build_lexical([r["text"] for r in rows])
        self._sorted_names = sorted(set(self.names_low))
        self._known_accounts = {normalise(str(n)): str(i) for n, i in set(zip(self.account_names, self.account_ids))}

    @classmethod
    def load(cls, store: ResourceStore, embed_query) -> "LookupIndex":
        with Session(store.engine) as session:
            result = session.exec(select(ResourceRow.id, ResourceRow.name, ResourceRow.resource_id,
                                         ResourceRow.resource_type, ResourceRow.account_id, ResourceRow.account_name,
                                         ResourceRow.region, ResourceRow.state, ResourceRow.tags, ResourceRow.text,
                                         ResourceRow.vector)).all()
        keys = ("id", "name", "resource_id", "resource_type", "account_id", "account_name", "region", "state",
                "tags", "text")
        rows = [dict(zip(keys, r[:-1])) for r in result]
        vectors = (np.frombuffer(b"".join(r[-1] for r in result), dtype=np.float32).reshape(len(result), -1)
                   if result else np.zeros((0, 384), dtype=np.float32))
        return cls(rows, vectors, embed_query)

    def __len__(self) -> int:
        return len(self.ids)

    def _build_lexical(self, texts: list[str]) -> None:
        """TF-IDF over hashed words, each document's vector L2-normalised, stored by column: for the
        hashed word ``self._post_cols[j]``, the documents ``self._post_rows[s:e]`` hold it with weights
        ``self._post_vals[s:e]`` (``s, e = self._post_start[j:j + 2]``; documents in order)."""
        cols: list[int] = []
        vals: list[float] = []
        lengths: list[int] = []
        for text in texts:
            counts = sparse_counts(text, HASH_DIM)
            cols.extend(counts)
            vals.extend(counts.values())
            lengths.append(len(counts))
        row = np.repeat(np.arange(len(texts), dtype=np.int32), np.asarray(lengths, np.int64))
        col = np.asarray(cols, np.int64)
        del cols
        val = np.asarray(vals, np.float32)
        del vals
        df = np.bincount(col, minlength=HASH_DIM).astype(np.float32)
        self._idf = np.log((len(texts) + 1.0) / (df + 1.0)).astype(np.float32) + 1.0
        val *= self._idf[col]
        norms = np.sqrt(np.bincount(row, weights=val * val, minlength=len(texts))).astype(np.float32)
        norms[norms == 0] = 1.0
        val *= (1.0 / norms)[row]
        order = np.argsort(col, kind="stable")  # by word; documents stay in order within a word
        col = col[order]
        starts = np.flatnonzero(np.diff(col)) + 1 if len(col) else np.zeros(0, np.int64)
        starts = np.concatenate(([0], starts)) if len(col) else starts
        self._post_cols = col[starts]
        self._post_start = np.append(starts, len(col))
        self._post_rows = row[order]
        self._post_vals = val[order]

    def _posting(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The documents holding hashed word ``idx`` and their TF-IDF weights (empty when none does)."""
        j = int(np.searchsorted(self._post_cols, idx))
        if j == len(self._post_cols) or self._post_cols[j] != idx:
            return self._post_rows[:0], self._post_vals[:0]
        start, end = self._post_start[j], self._post_start[j + 1]
        return self._post_rows[start:end], self._post_vals[start:end]

    # -- query parsing --------------------------------------------------------------------------
    def parse(self, query: str) -> ParsedQuery:
        try:
            expr, rest = split_query(query)
        except TagExprError as exc:
            raise QueryError(str(exc)) from None
        text = normalise(rest)
        # Ids, ARNs and URLs are matched whole: hide them from hint parsing (an ARN holds a region).
        protected = [w for w in (w.strip("?!.,;'\"()") for w in text.split()) if w and (w in self.exact or ":" in w or "/" in w)]
        for n, word in enumerate(protected):
            text = text.replace(word, f" \x00{n}\x00 ")
        hints: list[str] = []
        regions = set(REGION_IN_TEXT.findall(text))
        for r in regions:
            text = text.replace(r, " ")
            hints.append(f"region {r}")
        for word, prefix in _REGION_WORDS.items():
            pattern = r"(?:\b(?:in|from)\s+)?(?<![\w-])" + word + r"(?![\w-])"
            if re.search(pattern, text) and not self.exact.get(word):
                matching = {str(r) for r in self._codes["region"].values if str(r).startswith(prefix)}
                if matching:
                    regions |= matching
                    text = re.sub(pattern, " ", text)
                    hints.append(f"region {word}")
        accounts: set[str] = set()
        known = self._known_accounts
        for name, account_id in sorted(known.items(), key=lambda kv: -len(kv[0])):
            pattern = r"(?:\b(?:in|on|from)\s+(?:the\s+)?)?(?<![\w-])" + re.escape(name) + r"(?![\w-])(?:\s+account)?"
            if re.search(pattern, text) and not self.exact.get(name):
                accounts.add(account_id)
                text = re.sub(pattern, " ", text)
                hints.append(f"account {name}")
        for account_id in re.findall(r"(?<!\d)\d{12}(?!\d)", text):
            accounts.add(account_id)
            text = text.replace(account_id, " ")
            hints.append(f"account {account_id}")
        environment = None
        for word, env in _ENV_WORDS.items():
            if re.search(r"(?<![\w-])" + word + r"(?![\w-])", text) and not self.exact.get(word):
                environment = env
        unprotected = re.sub(r"\x00\d+\x00", " ", text)
        for n, word in enumerate(protected):
            text = text.replace(f"\x00{n}\x00", word)
        # Type words decide the type unless the words are themselves a resource's name ("web-server-1").
        # Words inside names ("acme-prod-db-backups") are not type words: only free-standing ones count.
        loose = re.sub(r"\S*[-_./:]\S*", " ", unprotected)
        types = head_types(loose) if not self.exact.get(text.strip()) else set()
        state = next((canon_state for word, canon_state in _STATE_WORDS.items()
                      if re.search(r"(?<![\w-])" + word + r"(?![\w-])", text)), None)
        if types:
            hints.append("type " + "/".join(sorted(types)))
        return ParsedQuery(text=re.sub(r"\s+", " ", text).strip(), tag_expr=expr, accounts=accounts, regions=regions,
                           types=types, environment=environment, hints=hints, state=state)

    # -- search ---------------------------------------------------------------------------------
    def _tag_column(self, key: str) -> _Categorical:
        """Canonical values of one tag key across all documents ("\\x00" where absent), built once."""
        cache = self.__dict__.setdefault("_tag_columns", {})
        if key not in cache:
            low = key.lower()
            cache[key] = _Categorical([canon(next((v for k, v in t.items() if k.lower() == low), "\x00"))
                                       for t in self.tags])
        return cache[key]

    def _tag_mask(self, node: Node) -> np.ndarray:
        if node.op == "term":
            term = node.term
            column = self._tag_column(term.key)
            hit = ~column.eq("\x00") if term.value == "*" else column.eq(canon(term.value))
            return ~hit if term.negated else hit
        if node.op == "not":
            return ~self._tag_mask(node.children[0])
        masks = [self._tag_mask(c) for c in node.children]
        return np.logical_and.reduce(masks) if node.op == "and" else np.logical_or.reduce(masks)

    def search(self, query: str, *, limit: int = 10, account: str | None = None,
               resource_type: str | None = None, every_match: bool = False) -> list[Hit]:
        """Ranked hits for ``query``. Every signal is a vector over all documents (numpy, rapidfuzz's
        C++ cdist, a product over postings), so cost grows gently with the estate; reasons are built for the
        returned hits only. ``every_match``: every document the filters let through is a hit, as for a
        pure filter (a listing: "list the databases in staging")."""
        if not len(self):
            return []
        q = self.parse(query)
        n = len(self)
        mask = np.ones(n, dtype=bool)
        codes = self._codes
        if account:
            mask &= codes["account_id"].eq(account) | codes["account_name"].eq(account)
        if resource_type:
            mask &= codes["type"].eq(resource_type)
        if q.accounts:
            mask &= codes["account_id"].isin(q.accounts)
        if q.regions:
            mask &= codes["region"].isin([*q.regions, "global"])
        if q.tag_expr is not None:
            mask &= self._tag_mask(q.tag_expr)
        if every_match and q.state:  # "list the stopped instances": the state selects, it does not just rank
            mask &= codes["state"].eq(q.state)
        all_words = _QUERY_WORD.findall(q.text)
        if q.types:
            typed = mask & codes["type"].isin(q.types)
            # A resource named exactly stays a candidate whatever the type words say ("instance
            # refresh on web-asg" is about the group called web-asg, not an instance).
            for word in all_words:
                if _IDENTIFIER_SHAPED.search(word):
                    for i in self.exact.get(word, []):
                        typed[i] = typed[i] or mask[i]
            if typed.any():
                mask = typed
        if not mask.any():
            return []

        words = [w for w in all_words if w not in _FILLER]
        free = " ".join(words)
        exact = np.zeros(n, dtype=np.float32)
        fuzzy = np.zeros(n, dtype=np.float32)
        lexical = np.zeros(n, dtype=np.float32)
        semantic = np.zeros(n, dtype=np.float32)
        exact_key: dict[int, str] = {}
        for key in {free, *words}:
            # A whole query, or an identifier-shaped word (orders-db, i-0a1b, an ARN), is decisive; a
            # plain word that happens to be a name ("orders") only counts for part.
            weight = 1.0 if key == free or _IDENTIFIER_SHAPED.search(key) else 0.4
            for i in self.exact.get(key, []):
                if weight > exact[i]:
                    exact[i] = weight
                    exact_key[i] = key
        # A name typed with spaces for its dashes is as exact as the name itself, when all of its words
        # stand in the query in order: "the payments queue" names payments-queue, not payments-queue-dlq.
        for size in range(2, min(_MAX_SPACED_WORDS, len(all_words)) + 1):
            for start in range(len(all_words) - size + 1):
                phrase = " ".join(all_words[start:start + size])
                for i in self.spaced.get(phrase, []):
                    if exact[i] < 1.0:
                        exact[i] = 1.0
                        exact_key[i] = phrase
        expanded = free
        for phrase, extra in _QUERY_SYNONYMS.items():
            if re.search(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", free):
                expanded += " " + extra
        if free:
            # A cheap similarity over every name picks candidates; WRatio (handles abbreviations and
            # partial names, ~30x slower) scores only those.
            coarse = process.cdist([free], self.names_low, scorer=fuzz.QRatio, workers=1)[0]
            pool = np.argpartition(-coarse, min(300, n - 1))[:300] if n > 300 else np.arange(n)
            sub = [self.names_low[i] for i in pool]
            fine = process.cdist([free], sub, scorer=fuzz.WRatio, workers=1, score_cutoff=60)[0]
            fuzzy[pool] = np.clip((fine - 60.0) / 40.0, 0.0, 1.0)
            counts = sparse_counts(expanded, HASH_DIM)
            if counts:
                weights = {idx: value * float(self._idf[idx]) for idx, value in counts.items()}
                norm = float(np.sqrt(sum(w * w for w in weights.values()))) or 1.0
                for idx, weight in weights.items():
                    docs, tfidf = self._posting(idx)
                    lexical[docs] += tfidf * (weight / norm)
            if self.embed_query is not None:
                qv = np.asarray(self.embed_query(expanded), dtype=np.float32)
                semantic = self.vectors @ qv
        env = np.zeros(n, dtype=np.float32)
        if q.environment:
            env = self._tag_column("env").eq(canon(q.environment)).astype(np.float32)
        state = np.zeros(n, dtype=np.float32)
        if q.state:
            state = codes["state"].eq(q.state).astype(np.float32)
        semantic_scaled = np.clip((semantic - 0.1) / 0.6, 0.0, 1.0)
        lexical_kept = np.where(lexical > 0.15, lexical, 0.0)
        total = exact + 0.45 * fuzzy + 0.35 * lexical_kept + 0.35 * semantic_scaled + 0.15 * env + 0.3 * state
        if not free or every_match:  # a pure filter ("env=prod AND app=main", "databases in staging"): every match
            total = total + 0.5
        total = np.where(mask, total, -1.0)
        k = min(limit, int(mask.sum()))
        top = np.argpartition(-total, k - 1)[:k] if k < n else np.arange(n)
        top = sorted(top, key=lambda i: (-round(float(total[i]), 3), self.names_low[i]))  # ties: by name
        filters = list(q.hints)
        if q.tag_expr is not None:
            terms = " ".join(f"{t.key}{'!=' if t.negated else '='}{t.value}" for t in q.tag_expr.terms())
            filters.append(f"tags {terms}")
        hits = []
        for i in top[:limit]:
            if total[i] <= 0:
                break
            why = []
            if exact[i]:
                why.append(f"exact {exact_key[int(i)]}")
            if fuzzy[i] > 0:
                why.append(f"fuzzy name {60 + 40 * fuzzy[i]:.0f}")
            if lexical_kept[i] > 0:
                why.append(f"words {lexical[i]:.2f}")
            if semantic_scaled[i] > 0.3:
                why.append(f"semantic {semantic[i]:.2f}")
            if env[i]:
                why.append(f"env {q.environment}")
            if state[i]:
                why.append(f"state {q.state}")
            components = {"exact": float(exact[i]), "fuzzy": round(float(fuzzy[i]), 3),
                          "lexical": round(float(lexical[i]), 3), "semantic": round(float(semantic[i]), 3)}
            hits.append(Hit(self.ids[i], round(float(min(total[i], 2.0) / 2.0), 4), why + filters, int(i), components))
        return hits

    def autocomplete(self, prefix: str, limit: int = 8) -> list[str]:
        """Names starting with ``prefix``, then fuzzy matches: cheap enough for every keystroke."""
        import bisect

        low = normalise(prefix).strip()
        if not low:
            return []
        start = bisect.bisect_left(self._sorted_names, low)
        out = []
        for name in self._sorted_names[start:]:
            if not name.startswith(low) or len(out) >= limit:
                break
            out.append(name)
        if len(out) < limit:
            for name, _, _ in process.extract(low, self._sorted_names, scorer=fuzz.partial_ratio, limit=limit * 2,
                                              score_cutoff=75):
                if name not in out:
                    out.append(name)
                if len(out) >= limit:
                    break
        return out

