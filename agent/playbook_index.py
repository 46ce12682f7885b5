"""The playbook index: dense and lexical vectors of every playbook's title and example utterances in
a Qdrant collection, and per-playbook metadata in SQLite (SQLModel).

Why the vectors are also cached in SQLite: embedding is the only expensive part of indexing, and a
stateless server may run several worker processes. Qdrant's embedded on-disk mode admits one process
per folder, so each process keeps its own in-memory collection (or talks to a Qdrant server by URL)
and fills it from the cache; only playbooks whose content hash changed are embedded again.
"""

from __future__ import annotations

import math
import subprocess
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient, models
from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select

from agent.embeddings import Embedder
from agent.playbook import LoadedPlaybook
from agent.text import sparse_counts

COLLECTION = "playbooks"
_NAMESPACE = uuid.UUID("6f1c2d9e-8a53-4b7e-9d1a-2f5b3c4d5e6f")


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


class PlaybookIndex:
    def __init__(self, embedder: Embedder, db_url: str = "sqlite://", qdrant_location: str = ":memory:"):
        self.embedder = embedder
        self.engine: Engine = create_engine(db_url, connect_args={"check_same_thread": False} if db_url.startswith("sqlite") else {})
        SQLModel.metadata.create_all(self.engine, tables=[PlaybookRecord.__table__, UtteranceVector.__table__])
        if qdrant_location.startswith(("http://", "https://")):
            self.qdrant = QdrantClient(url=qdrant_location)
        else:
            self.qdrant = QdrantClient(location=":memory:") if qdrant_location == ":memory:" else QdrantClient(path=qdrant_location)
        self._df: Counter[int] = Counter()
        self._texts = 0

    @classmethod
    def at(cls, directory: Path, embedder: Embedder) -> "PlaybookIndex":
        """An index whose metadata and vector cache live in ``directory/playbooks.db``."""
        directory.mkdir(parents=True, exist_ok=True)
        return cls(embedder, db_url=f"sqlite:///{directory / 'playbooks.db'}")

    def _ensure_collection(self) -> None:
        if self.qdrant.collection_exists(COLLECTION):
            return
        self.qdrant.create_collection(
            COLLECTION,
            vectors_config={"dense": models.VectorParams(size=self.embedder.dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={"lexical": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )

    def sync(self, playbooks: list[LoadedPlaybook]) -> IndexStats:
        """Bring the cache and the collection in line with ``playbooks``; embed only what changed."""
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
        if self.qdrant.collection_exists(COLLECTION):
            self.qdrant.delete_collection(COLLECTION)
        self._ensure_collection()
        points = []
        self._df = Counter()
        rows = session.exec(select(UtteranceVector)).all()
        self._texts = len(rows)
        for row in rows:
            lp = wanted[row.playbook_id]
            counts = sparse_counts(row.text)
            self._df.update(counts.keys())
            points.append(models.PointStruct(
                id=row.point_id,
                vector={"dense": np.frombuffer(row.vector, dtype=np.float32).tolist(),
                        "lexical": models.SparseVector(indices=list(counts), values=list(counts.values()))},
                payload={"playbook_id": row.playbook_id, "system": lp.playbook.system,
                         "service": lp.playbook.service, "text": row.text},
            ))
        if points:
            self.qdrant.upsert(COLLECTION, points=points, wait=True)

    def _idf(self, token: int) -> float:
        n = self._df.get(token, 0)
        return math.log((self._texts - n + 0.5) / (n + 0.5) + 1.0)

    def records(self) -> list[PlaybookRecord]:
        with Session(self.engine) as session:
            return list(session.exec(select(PlaybookRecord).order_by(PlaybookRecord.id)).all())

    def search(self, query: str, *, limit: int = 60, system: str | None = None,
               services: list[str] | None = None, query_vector: list[float] | None = None) -> list[Hit]:
        """Per-playbook best dense and lexical scores for ``query``, optionally filtered by system/services."""
        must: list[models.Condition] = []
        if system:
            must.append(models.FieldCondition(key="system", match=models.MatchValue(value=system)))
        if services:
            must.append(models.FieldCondition(key="service", match=models.MatchAny(any=services)))
        query_filter = models.Filter(must=must) if must else None
        vector = query_vector if query_vector is not None else list(self.embedder.encode([query])[0])
        dense = self.qdrant.query_points(COLLECTION, query=vector, using="dense", limit=limit,
                                         query_filter=query_filter, with_payload=True).points
        counts = sparse_counts(query)
        lexical = []
        if counts:
            lexical = self.qdrant.query_points(
                COLLECTION, query=models.SparseVector(indices=list(counts), values=list(counts.values())),
                using="lexical", limit=limit, query_filter=query_filter, with_payload=True).points
        best_dense: dict[str, tuple[float, str]] = {}
        for p in dense:
            pid = p.payload["playbook_id"]
            if pid not in best_dense or p.score > best_dense[pid][0]:
                best_dense[pid] = (float(p.score), p.payload["text"])
        best_lex: dict[str, float] = {}
        for p in lexical:
            pid = p.payload["playbook_id"]
            best_lex[pid] = max(best_lex.get(pid, 0.0), float(p.score))
        # Qdrant's IDF modifier scores sum(q * d * idf); dividing by the query's own best possible
        # score makes the lexical signal an absolute 0..1 coverage, comparable across queries.
        self_score = sum(q * self._idf(t) for t, q in counts.items()) or 1.0
        ids = set(best_dense) | set(best_lex)
        hits = [Hit(pid, best_dense.get(pid, (0.0, ""))[0], min(1.0, best_lex.get(pid, 0.0) / self_score),
                    best_dense.get(pid, (0.0, ""))[1]) for pid in ids]
        return sorted(hits, key=lambda h: (-h.dense, h.playbook_id))

    def close(self) -> None:
        self.qdrant.close()
        self.engine.dispose()
