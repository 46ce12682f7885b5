"""The playbook index: dense and lexical vectors of every playbook's title and example utterances in
a vector collection, and per-playbook metadata in SQLite (SQLModel).

Why the vectors are also cached in SQLite: embedding is the only expensive part of indexing, and a
stateless server may run several worker processes. Each process fills its own collection from the
cache; only playbooks whose content hash changed are embedded again.

Two collections answer the same two queries (dense cosine, IDF-weighted sparse dot product):
``NumpyCollection``, exact search over a few thousand in-process vectors (the default: a CLI process
must not spend 1.5 s importing qdrant-client to search 300 vectors), and ``QdrantCollection`` for a
Qdrant server URL or folder (a team deployment). ``tests/test_playbook_index.py`` holds the two to
the same answers.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, Session, SQLModel, create_engine, select

from agent.catalogue import CatalogueEntry, catalogue_fingerprint
from agent.embeddings import Embedder
from agent.playbook import LoadedPlaybook
from agent.text import sparse_counts, token_id, tokens

COLLECTION = "playbooks"
_NAMESPACE = uuid.UUID("6f1c2d9e-8a53-4b7e-9d1a-2f5b3c4d5e6f")
T = TypeVar("T")


class PlaybookRecord(SQLModel, table=True):
    __tablename__ = "playbook"
    id: str = Field(primary_key=True)
    version: str
    content_hash: str
    git_commit: str | None = None
    system: str
    service: str
    title: str
    embedder: str
    indexed_at: datetime


class UtteranceVector(SQLModel, table=True):
    __tablename__ = "utterance_vector"
    point_id: str = Field(primary_key=True)
    playbook_id: str = Field(index=True)
    text: str
    vector: bytes


class OperationRecord(SQLModel, table=True):
    """One catalogue entry, whole (``entry``: CatalogueEntry.to_dict as JSON): a warm start reads the catalogue
    from here instead of walking botocore's shapes again."""

    __tablename__ = "catalogue_entry"
    id: str = Field(primary_key=True)  # "rds.DeleteEventSubscription"
    service: str = Field(index=True)
    operation: str
    access: str
    title: str
    fingerprint: str  # botocore release, catalogue derivation and access table it was built from
    entry: str
    indexed_at: datetime


class OperationVector(SQLModel, table=True):
    """A catalogue text's vector, addressed by its content (model name + text): texts shared by two
    releases of botocore, or by two homes on one machine, are embedded once."""

    __tablename__ = "operation_vector"
    text_hash: str = Field(primary_key=True)
    vector: bytes


@dataclass
class IndexStats:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    embedded_texts: int = 0


@dataclass(frozen=True)
class Hit:
    playbook_id: str
    dense: float
    lexical: float
    matched_text: str


@dataclass(frozen=True)
class VectorPoint:
    """One indexed text: its dense vector, its sparse token counts and the playbook's filter fields."""

    point_id: str
    dense: np.ndarray
    sparse: dict[int, float]
    playbook_id: str
    system: str
    service: str
    text: str


@dataclass(frozen=True)
class ScoredPoint:
    playbook_id: str
    text: str
    score: float


def idf(texts: int, with_token: int) -> float:
    """BM25's IDF, the formula Qdrant's ``Modifier.IDF`` applies."""
    return math.log((texts - with_token + 0.5) / (with_token + 0.5) + 1.0)


class NumpyCollection:
    """Exact in-process search: a matrix product for dense, a dict walk for sparse."""

    def __init__(self) -> None:
        self.points: list[VectorPoint] = []
        self._matrix = np.zeros((0, 0), np.float32)
        self._df: Counter[int] = Counter()

    def replace(self, points: list[VectorPoint], dimension: int) -> None:
        self.points = points
        matrix = np.stack([p.dense for p in points]) if points else np.zeros((0, dimension), np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self._matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
        self._df = Counter(t for p in points for t in p.sparse)

    def _allowed(self, system: str | None, services: list[str] | None) -> np.ndarray:
        return np.array([(system is None or p.system == system) and (not services or p.service in services)
                         for p in self.points], dtype=bool)

    def _top(self, scores: np.ndarray, allowed: np.ndarray, limit: int) -> list[ScoredPoint]:
        order = [i for i in np.argsort(-scores, kind="stable") if allowed[i]][:limit]
        return [ScoredPoint(self.points[i].playbook_id, self.points[i].text, float(scores[i])) for i in order]

    def dense(self, vector: list[float], limit: int, system: str | None, services: list[str] | None) -> list[ScoredPoint]:
        if not self.points:
            return []
        query = np.asarray(vector, dtype=np.float32)
        scores = self._matrix @ (query / max(float(np.linalg.norm(query)), 1e-12))
        return self._top(scores, self._allowed(system, services), limit)

    def sparse(self, counts: dict[int, float], limit: int, system: str | None,
               services: list[str] | None) -> list[ScoredPoint]:
        weights = {t: q * idf(len(self.points), self._df.get(t, 0)) for t, q in counts.items()}
        scores = np.array([sum(w * p.sparse.get(t, 0.0) for t, w in weights.items()) for p in self.points],
                          dtype=np.float64)
        allowed = self._allowed(system, services) & (scores > 0)
        return self._top(scores, allowed, limit)

    def close(self) -> None:
        self.points = []


class QdrantCollection:
    """The same queries against Qdrant (``:memory:``, a folder, or a server URL)."""

    def __init__(self, location: str, name: str = COLLECTION) -> None:
        from qdrant_client import QdrantClient

        if location.startswith(("http://", "https://")):
            self.client = QdrantClient(url=location)
        else:
            self.client = QdrantClient(location=":memory:") if location == ":memory:" else QdrantClient(path=location)
        self.name = name

    def replace(self, points: list[VectorPoint], dimension: int) -> None:
        from qdrant_client import models

        if self.client.collection_exists(self.name):
            self.client.delete_collection(self.name)
        self.client.create_collection(
            self.name,
            vectors_config={"dense": models.VectorParams(size=dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={"lexical": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        structs = [models.PointStruct(
            id=p.point_id,
            vector={"dense": p.dense.tolist(),
                    "lexical": models.SparseVector(indices=list(p.sparse), values=list(p.sparse.values()))},
            payload={"playbook_id": p.playbook_id, "system": p.system, "service": p.service, "text": p.text},
        ) for p in points]
        if structs:
            self.client.upsert(self.name, points=structs, wait=True)

    @staticmethod
    def _filter(system: str | None, services: list[str] | None):
        from qdrant_client import models

        must: list[models.Condition] = []
        if system:
            must.append(models.FieldCondition(key="system", match=models.MatchValue(value=system)))
        if services:
            must.append(models.FieldCondition(key="service", match=models.MatchAny(any=services)))
        return models.Filter(must=must) if must else None

    def _query(self, query, using: str, limit: int, system: str | None, services: list[str] | None) -> list[ScoredPoint]:
        points = self.client.query_points(self.name, query=query, using=using, limit=limit,
                                          query_filter=self._filter(system, services), with_payload=True).points
        return [ScoredPoint(p.payload["playbook_id"], p.payload["text"], float(p.score)) for p in points]

    def dense(self, vector: list[float], limit: int, system: str | None, services: list[str] | None) -> list[ScoredPoint]:
        return self._query(list(vector), "dense", limit, system, services)

    def sparse(self, counts: dict[int, float], limit: int, system: str | None,
               services: list[str] | None) -> list[ScoredPoint]:
        from qdrant_client import models

        vector = models.SparseVector(indices=list(counts), values=list(counts.values()))
        return self._query(vector, "lexical", limit, system, services)

    def close(self) -> None:
        self.client.close()


def _texts(lp: LoadedPlaybook) -> list[str]:
    pb = lp.playbook
    return [pb.title, *pb.utterances]


def _git_commit(directory: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(directory), "log", "-1", "--format=%H", "--", "."],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit or None


def _lost_a_race(exc: Exception) -> bool:
    """True when ``exc`` is what a worker sees after another one wrote the same metadata first.

    Two server workers starting at once against one empty database both see the tables missing. On
    PostgreSQL the loser's CREATE TABLE fails in the catalogue (UniqueViolation on
    pg_type_typname_nsp_index, or "relation ... already exists"); on SQLite it is an OperationalError,
    "table playbook already exists", or "database is locked" while the winner holds the write lock (both
    seen in the team-deployment test). By then the winner has made them, so a second pass finds them."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    if isinstance(exc, (IntegrityError, ProgrammingError)):
        return True
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        return "already exists" in text or "database is locked" in text
    return False


def _retrying_lost_races(action: Callable[[], T]) -> T:
    """Run ``action``; when it lost a race to another worker (``_lost_a_race``), wait and run it again."""
    for attempt in range(5):
        try:
            return action()
        except Exception as exc:
            if attempt == 4 or not _lost_a_race(exc):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _create_tables(engine: Engine, tables: list | None = None) -> None:
    """Create the metadata tables if missing, taking a lost creation race as "someone else made them"."""
    tables = tables or [PlaybookRecord.__table__, UtteranceVector.__table__, OperationRecord.__table__,
                        OperationVector.__table__]
    _retrying_lost_races(lambda: SQLModel.metadata.create_all(engine, tables=tables))


def _engine(db_url: str) -> Engine:
    """An engine for ``db_url``. An in-memory SQLite database exists once per connection, so it gets one
    connection shared by every thread (StaticPool): the server answers ``GET /v1/playbooks`` from a worker
    thread, and a pool of per-thread connections gave it an empty database ("no such table: playbook")."""
    if db_url in ("sqlite://", "sqlite:///:memory:"):
        return create_engine(db_url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    if db_url.startswith("sqlite"):
        return create_engine(db_url, connect_args={"check_same_thread": False, "timeout": 30})
    return create_engine(db_url)


class PlaybookIndex:
    def __init__(self, embedder: Embedder, db_url: str = "sqlite://", qdrant_location: str | None = None):
        """``qdrant_location`` None keeps the vectors in numpy; ``:memory:``, a folder or a URL uses Qdrant."""
        self.embedder = embedder
        self.engine: Engine = _engine(db_url)
        _create_tables(self.engine)
        self.collection: NumpyCollection | QdrantCollection = (
            NumpyCollection() if qdrant_location is None else QdrantCollection(qdrant_location))
        self._df: Counter[int] = Counter()
        self._texts = 0
        # Catalogue vectors are content-addressed and depend on botocore and the model only: a team's shared
        # database keeps them itself; a local index shares one cache per machine (shared_vector_cache).
        self._vector_engine: Engine = self.engine if db_url.startswith("postgresql") else _engine(vector_cache_url())
        if self._vector_engine is not self.engine:
            _create_tables(self._vector_engine, [OperationVector.__table__])
        self.operations = OperationSearch.empty(embedder.dimension)
        self._memo: tuple[str, np.ndarray] | None = None

    @classmethod
    def at(cls, directory: Path, embedder: Embedder, qdrant_location: str | None = None) -> "PlaybookIndex":
        """An index whose metadata and vector cache live in ``directory/playbooks.db``."""
        directory.mkdir(parents=True, exist_ok=True)
        return cls(embedder, db_url=f"sqlite:///{directory / 'playbooks.db'}", qdrant_location=qdrant_location)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's vector, remembered for the next call: the classifier and the catalogue ask for the
        same masked prompt, and the model call is most of a plan's time."""
        if self._memo is None or self._memo[0] != query:
            self._memo = (query, self.embedder.encode([query])[0])
        return self._memo[1]

    # -- the operation catalogue ----------------------------------------------------------------
    def sync_catalogue(self, entries: list[CatalogueEntry]) -> CatalogueStats:
        """Load the catalogue's vectors (embedding only texts never seen with this model), record its
        entries for listing, and build the in-process search over them."""
        return _retrying_lost_races(lambda: self._sync_catalogue(entries))

    def _sync_catalogue(self, entries: list[CatalogueEntry]) -> CatalogueStats:
        started = time.perf_counter()
        stats = CatalogueStats(entries=len(entries), fingerprint=catalogue_fingerprint())
        texts: list[str] = []
        rows: list[int] = []
        for i, entry in enumerate(entries):
            for text in entry.texts():
                texts.append(text)
                rows.append(i)
        hashes = [_text_hash(self.embedder.name, t) for t in texts]
        vectors = self._cached_vectors(hashes)
        missing = sorted({h for h in hashes if h not in vectors})
        if missing:
            todo = {h: t for h, t in zip(hashes, texts) if h in set(missing)}
            encoded = self.embedder.encode(list(todo.values()))
            fresh = {h: encoded[i].astype(np.float32) for i, h in enumerate(todo)}
            self._store_vectors(fresh)
            vectors.update(fresh)
            stats.embedded_texts = len(fresh)
        stats.texts = len(texts)
        self._record_entries(entries, stats.fingerprint)
        matrix = np.stack([vectors[h] for h in hashes]) if hashes else np.zeros((0, self.embedder.dimension), np.float32)
        self.operations = OperationSearch(entries, np.asarray(rows, dtype=np.int64), matrix)
        stats.seconds = round(time.perf_counter() - started, 3)
        return stats

    def _cached_vectors(self, hashes: list[str]) -> dict[str, np.ndarray]:
        wanted = set(hashes)
        out: dict[str, np.ndarray] = {}
        # Plain rows, not ORM objects: building 3,500 of those was a fifth of a warm start.
        with self._vector_engine.connect() as connection:
            table = OperationVector.__table__
            for text_hash, vector in connection.execute(select(table.c.text_hash, table.c.vector)):
                if text_hash in wanted:
                    out[text_hash] = np.frombuffer(vector, dtype=np.float32)
        return out

    def _store_vectors(self, vectors: dict[str, np.ndarray]) -> None:
        with Session(self._vector_engine) as session:
            for text_hash, vector in vectors.items():
                session.merge(OperationVector(text_hash=text_hash, vector=vector.astype(np.float32).tobytes()))
            session.commit()

    def _record_entries(self, entries: list[CatalogueEntry], fingerprint: str) -> None:
        """One row per entry, rewritten only when the catalogue's fingerprint changed."""
        with Session(self.engine) as session:
            first = session.exec(select(OperationRecord).limit(1)).first()
            count = len(session.exec(select(OperationRecord.id)).all()) if first else 0
            if first is not None and first.fingerprint == fingerprint and count == len(entries):
                return
            for row in session.exec(select(OperationRecord)).all():
                session.delete(row)
            session.flush()
            now = datetime.now(timezone.utc)
            session.add_all([OperationRecord(id=e.id, service=e.service, operation=e.operation, access=e.access,
                                             title=e.title(), fingerprint=fingerprint, indexed_at=now,
                                             entry=json.dumps(e.to_dict(), separators=(",", ":")))
                             for e in entries])
            session.commit()

    def cached_catalogue(self) -> list[CatalogueEntry] | None:
        """The catalogue recorded by an earlier build, if it was built from this botocore, this derivation and
        this access table; else None (the caller builds it from botocore)."""
        try:
            with Session(self.engine) as session:
                rows = session.exec(select(OperationRecord).order_by(OperationRecord.id)).all()
        except Exception:  # noqa: BLE001 - an unreadable cache is rebuilt, never trusted
            return None
        if not rows or rows[0].fingerprint != catalogue_fingerprint():
            return None
        try:
            return [CatalogueEntry.from_dict(json.loads(r.entry)) for r in rows]
        except (ValueError, TypeError, KeyError):
            return None

    def operation_records(self) -> list[OperationRecord]:
        with Session(self.engine) as session:
            return list(session.exec(select(OperationRecord).order_by(OperationRecord.id)).all())

    def sync(self, playbooks: list[LoadedPlaybook]) -> IndexStats:
        """Bring the cache and the collection in line with ``playbooks``; embed only what changed.

        Several server workers may start against one shared database at once: if another one committed
        the same rows first, this one's commit fails on their keys, and a second pass finds them there."""
        return _retrying_lost_races(lambda: self._sync(playbooks))

    def _sync(self, playbooks: list[LoadedPlaybook]) -> IndexStats:
        stats = IndexStats()
        commit = _git_commit(playbooks[0].path.parent) if playbooks else None
        wanted = {lp.playbook.id: lp for lp in playbooks}
        now = datetime.now(timezone.utc)
        with Session(self.engine) as session:
            records = {r.id: r for r in session.exec(select(PlaybookRecord)).all()}
            for pid in set(records) - set(wanted):
                self._drop(session, pid)
                session.delete(records[pid])
                stats.removed.append(pid)
            changed: list[LoadedPlaybook] = []
            for pid, lp in wanted.items():
                record = records.get(pid)
                if record and record.content_hash == lp.content_hash and record.embedder == self.embedder.name:
                    stats.unchanged += 1
                    continue
                (stats.updated if record else stats.added).append(pid)
                changed.append(lp)
            texts = [t for lp in changed for t in _texts(lp)]
            vectors = self.embedder.encode(texts) if texts else np.zeros((0, self.embedder.dimension), np.float32)
            stats.embedded_texts = len(texts)
            offset = 0
            for lp in changed:
                pb = lp.playbook
                self._drop(session, pb.id)
                for i, text in enumerate(_texts(lp)):
                    session.add(UtteranceVector(point_id=str(uuid.uuid5(_NAMESPACE, f"{pb.id}:{i}")), playbook_id=pb.id,
                                                text=text, vector=vectors[offset].astype(np.float32).tobytes()))
                    offset += 1
                session.merge(PlaybookRecord(id=pb.id, version=pb.version, content_hash=lp.content_hash, git_commit=commit,
                                             system=pb.system, service=pb.service, title=pb.title,
                                             embedder=self.embedder.name, indexed_at=now))
            session.commit()
            self._load_collection(session, wanted)
        return stats

    def _drop(self, session: Session, playbook_id: str) -> None:
        for row in session.exec(select(UtteranceVector).where(UtteranceVector.playbook_id == playbook_id)).all():
            session.delete(row)

    def _load_collection(self, session: Session, wanted: dict[str, LoadedPlaybook]) -> None:
        """(Re)fill the collection from the cache: cheap, no embedding."""
        points = []
        self._df = Counter()
        rows = session.exec(select(UtteranceVector).order_by(UtteranceVector.point_id)).all()
        self._texts = len(rows)
        for row in rows:
            lp = wanted[row.playbook_id]
            counts = {t: float(c) for t, c in sparse_counts(row.text).items()}
            self._df.update(counts.keys())
            points.append(VectorPoint(row.point_id, np.frombuffer(row.vector, dtype=np.float32).copy(), counts,
                                      row.playbook_id, lp.playbook.system, lp.playbook.service, row.text))
        self.collection.replace(points, self.embedder.dimension)

    def records(self) -> list[PlaybookRecord]:
        with Session(self.engine) as session:
            return list(session.exec(select(PlaybookRecord).order_by(PlaybookRecord.id)).all())

    def search(self, query: str, *, limit: int = 60, system: str | None = None,
               services: list[str] | None = None, query_vector: list[float] | None = None) -> list[Hit]:
        """Per-playbook best dense and lexical scores for ``query``, optionally filtered by system/services."""
        vector = query_vector if query_vector is not None else list(self.query_vector(query))
        dense = self.collection.dense(vector, limit, system, services)
        counts = {t: float(c) for t, c in sparse_counts(query).items()}
        lexical = self.collection.sparse(counts, limit, system, services) if counts else []
        best_dense: dict[str, tuple[float, str]] = {}
        for p in dense:
            if p.playbook_id not in best_dense or p.score > best_dense[p.playbook_id][0]:
                best_dense[p.playbook_id] = (p.score, p.text)
        best_lex: dict[str, float] = {}
        for p in lexical:
            best_lex[p.playbook_id] = max(best_lex.get(p.playbook_id, 0.0), p.score)
        # The sparse score is sum(q * d * idf); dividing by the query's own best possible score makes
        # the lexical signal an absolute 0..1 coverage, comparable across queries.
        self_score = sum(q * idf(self._texts, self._df.get(t, 0)) for t, q in counts.items()) or 1.0
        ids = set(best_dense) | set(best_lex)
        hits = [Hit(pid, best_dense.get(pid, (0.0, ""))[0], min(1.0, best_lex.get(pid, 0.0) / self_score),
                    best_dense.get(pid, (0.0, ""))[1]) for pid in ids]
        return sorted(hits, key=lambda h: (-h.dense, h.playbook_id))

    def close(self) -> None:
        self.collection.close()
        self.engine.dispose()
        self._vector_engine.dispose()


@dataclass
class CatalogueStats:
    entries: int = 0
    texts: int = 0
    embedded_texts: int = 0
    fingerprint: str = ""
    seconds: float = 0.0


def _text_hash(model: str, text: str) -> str:
    import hashlib

    return hashlib.sha256(f"{model}\n{text}".encode("utf-8")).hexdigest()[:40]


def vector_cache_url() -> str:
    """Where a local index keeps catalogue vectors: ``CLOUDOPS_CATALOGUE_CACHE`` (a folder), else the
    user's cache folder. Shared by every CLOUDOPS_HOME of the user: the vectors hold nothing of an estate
    (botocore's operation names and documentation only), and embedding them costs ~20-30 s on 2 cores."""
    import os

    from platformdirs import user_cache_dir

    folder = Path(os.environ.get("CLOUDOPS_CATALOGUE_CACHE") or user_cache_dir("cloudops-agent", appauthor=False))
    old = os.umask(0o077)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / "catalogue-vectors.db"
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    finally:
        os.umask(old)
    return f"sqlite:///{path}"


class OperationSearch:
    """Exact in-process search over the catalogue: dense (best of an entry's texts) and lexical (IDF-weighted
    overlap with the entry's name, summary and members), both as one score per entry. Numpy whatever the
    playbook collection is: the catalogue is the same for every deployment, and ~3,500 vectors are a
    sub-millisecond product."""

    def __init__(self, entries: list[CatalogueEntry], rows: np.ndarray, matrix: np.ndarray):
        self.entries = entries
        self.rows = rows
        norms = np.linalg.norm(matrix, axis=1, keepdims=True) if len(matrix) else np.ones((0, 1), np.float32)
        self.matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
        postings: dict[int, list[tuple[int, float]]] = {}
        for i, entry in enumerate(entries):
            for tok, count in Counter(tokens(entry.lexical_text())).items():
                postings.setdefault(token_id(tok), []).append((i, float(count)))
        n = len(entries)
        self._postings = {t: (np.array([i for i, _ in p], dtype=np.int64), np.array([c for _, c in p]) * idf(n, len(p)))
                          for t, p in postings.items()}
        self._idf = {t: idf(n, len(p)) for t, p in postings.items()}

    @classmethod
    def empty(cls, dimension: int) -> "OperationSearch":
        return cls([], np.zeros(0, np.int64), np.zeros((0, dimension), np.float32))

    def __len__(self) -> int:
        return len(self.entries)

    def dense(self, vector: np.ndarray) -> np.ndarray:
        """Per entry, the best cosine of its texts to ``vector``."""
        out = np.full(len(self.entries), -1.0, dtype=np.float32)
        if len(self.entries):
            query = np.asarray(vector, dtype=np.float32)
            scores = self.matrix @ (query / max(float(np.linalg.norm(query)), 1e-12))
            np.maximum.at(out, self.rows, scores)
        return out

    def lexical(self, query: str) -> np.ndarray:
        """Per entry, the IDF-weighted share of the query's words it holds (0..1)."""
        out = np.zeros(len(self.entries), dtype=np.float64)
        counts = Counter(token_id(t) for t in tokens(query))
        best = sum(q * self._idf.get(t, 0.0) for t, q in counts.items()) or 1.0
        for tok, q in counts.items():
            hit = self._postings.get(tok)
            if hit is not None:
                out[hit[0]] += q * np.minimum(hit[1], self._idf[tok])
        return np.minimum(out / best, 1.0)
