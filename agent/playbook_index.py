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
from sqlmodel import Field, Session, SQLModel, create_engine, select

from agent.embeddings import Embedder
from agent.playbook import LoadedPlaybook
from agent.text import sparse_counts

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


def _create_tables(engine: Engine) -> None:
    """Create the metadata tables if missing, taking a lost creation race as "someone else made them"."""
    tables = [PlaybookRecord.__table__, UtteranceVector.__table__]
    _retrying_lost_races(lambda: SQLModel.metadata.create_all(engine, tables=tables))


class PlaybookIndex:
    def __init__(self, embedder: Embedder, db_url: str = "sqlite://", qdrant_location: str | None = None):
        """``qdrant_location`` None keeps the vectors in numpy; ``:memory:``, a folder or a URL uses Qdrant."""
        self.embedder = embedder
        self.engine: Engine = create_engine(db_url, connect_args={"check_same_thread": False} if db_url.startswith("sqlite") else {})
        _create_tables(self.engine)
        self.collection: NumpyCollection | QdrantCollection = (
            NumpyCollection() if qdrant_location is None else QdrantCollection(qdrant_location))
        self._df: Counter[int] = Counter()
        self._texts = 0

    @classmethod
    def at(cls, directory: Path, embedder: Embedder, qdrant_location: str | None = None) -> "PlaybookIndex":
        """An index whose metadata and vector cache live in ``directory/playbooks.db``."""
        directory.mkdir(parents=True, exist_ok=True)
        return cls(embedder, db_url=f"sqlite:///{directory / 'playbooks.db'}", qdrant_location=qdrant_location)

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
        vector = query_vector if query_vector is not None else list(self.embedder.encode([query])[0])
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
