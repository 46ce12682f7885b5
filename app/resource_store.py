"""Where the estate lives on this machine: the embedded Qdrant collection ``aws_resources`` (payload =
the document, vector = its embedding) and, beside it, a SQLite table (SQLModel) of the same documents
with their content hashes and vectors.

Why both: Qdrant is the store of record and the path to a Qdrant server for teams, but its embedded
mode is a brute-force scan in Python (~150 ms at 10k points, ~1 GB RSS at 50k) and admits one process
per folder. The SQLite copy is what diffs are computed against (hash per id and scope) and what the
in-process lookup loads into numpy, so a search never has to open, lock or scan the collection.
Both are written in one step per scope; a scope that failed to sync is never touched.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, event
from sqlmodel import Field, Session, SQLModel, create_engine, select

from app.documents import ResourceDocument

COLLECTION = "aws_resources"
_NAMESPACE = uuid.UUID("0d7f2a51-3c9b-4d7e-a1f6-52c8b9e4d3a0")


def text_hash(doc: ResourceDocument) -> str:
    return hashlib.sha256(doc.text.encode("utf-8")).hexdigest()


def point_id(arn: str) -> str:
    """Qdrant point ids must be UUIDs or integers: a UUID derived from the ARN, stable forever."""
    return str(uuid.uuid5(_NAMESPACE, arn))


class ResourceRow(SQLModel, table=True):
    __tablename__ = "resource"
    id: str = Field(primary_key=True)
    scope: str = Field(index=True)
    account_id: str
    account_name: str
    region: str
    resource_type: str
    name: str
    resource_id: str
    state: str | None = None
    content_hash: str
    text_hash: str
    tags: str = "{}"
    text: str = ""
    document: str
    vector: bytes
    updated_at: datetime


@dataclass
class ScopeChange:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0


def sqlite_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):  # WAL: readers never block the syncing writer
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


class IndexBusy(RuntimeError):
    """Another process holds the embedded Qdrant folder (its mode admits one process at a time)."""


class ResourceStore:
    """Documents by scope (``account_id/region/service``) in SQLite, mirrored into Qdrant."""

    def __init__(self, directory: Path, qdrant_location: str | None = None, dimension: int = 384):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.engine = sqlite_engine(directory / "resources.db")
        SQLModel.metadata.create_all(self.engine, tables=[ResourceRow.__table__])
        self.dimension = dimension
        self._qdrant_location = qdrant_location or str(directory / "qdrant")
        self._qdrant = None

    # -- Qdrant, opened only by the writer ------------------------------------------------------
    @property
    def qdrant(self):
        if self._qdrant is None:
            from qdrant_client import QdrantClient, models

            loc = self._qdrant_location
            try:
                client = QdrantClient(url=loc) if loc.startswith(("http://", "https://")) else QdrantClient(path=loc)
            except RuntimeError as exc:
                if "already accessed" not in str(exc):
                    raise
                raise IndexBusy(f"the index at {loc} is open in another CloudOps process (the app, or a sync); "
                                "try again when it ends, or run the command while the app runs so it goes "
                                "through the app") from None
            if not client.collection_exists(COLLECTION):
                client.create_collection(COLLECTION, vectors_config=models.VectorParams(
                    size=self.dimension, distance=models.Distance.COSINE))
            self._qdrant = client
        return self._qdrant

    def changes(self, scope: str, documents: list[ResourceDocument]) -> tuple[list[ResourceDocument], dict[str, np.ndarray]]:
        """Of ``documents``, those whose embedded text is new or changed (to embed), and the stored
        vectors of those that changed only in fields the text does not carry (message counts, ...)."""
        with Session(self.engine) as session:
            rows = session.exec(select(ResourceRow.id, ResourceRow.content_hash, ResourceRow.text_hash)
                                .where(ResourceRow.scope == scope)).all()
        stored = {rid: (content, text) for rid, content, text in rows}
        to_embed: list[ResourceDocument] = []
        reuse_ids: list[str] = []
        for doc in documents:
            old = stored.get(doc.id)
            if old is not None and old[0] == doc.content_hash:
                continue
            if old is not None and old[1] == text_hash(doc):
                reuse_ids.append(doc.id)
            else:
                to_embed.append(doc)
        reused = {rid: np.frombuffer(v, dtype=np.float32) for rid, v in self.vectors_for(reuse_ids).items()}
        return to_embed, reused

    def known(self, scope: str) -> dict[str, ResourceDocument]:
        """The scope's stored documents by resource_id: what an incremental listing may reuse."""
        with Session(self.engine) as session:
            rows = session.exec(select(ResourceRow.document).where(ResourceRow.scope == scope)).all()
        docs = [ResourceDocument.model_validate_json(text) for text in rows]
        return {d.resource_id: d for d in docs}

    def hashes(self, scope: str) -> dict[str, str]:
        with Session(self.engine) as session:
            rows = session.exec(select(ResourceRow.id, ResourceRow.content_hash).where(ResourceRow.scope == scope)).all()
        return {rid: h for rid, h in rows}

    def all_hashes(self) -> dict[str, tuple[str, str]]:
        """id -> (scope, content hash) for every stored document."""
        with Session(self.engine) as session:
            rows = session.exec(select(ResourceRow.id, ResourceRow.scope, ResourceRow.content_hash)).all()
        return {rid: (scope, h) for rid, scope, h in rows}

    def vectors_for(self, ids: list[str]) -> dict[str, bytes]:
        with Session(self.engine) as session:
            rows = session.exec(select(ResourceRow.id, ResourceRow.vector).where(ResourceRow.id.in_(ids))).all()
        return {rid: v for rid, v in rows}

    def apply_scope(self, scope: str, documents: list[ResourceDocument], vectors: dict[str, np.ndarray],
                    *, write_qdrant: bool = True, repair: bool = False) -> ScopeChange:
        """Make ``scope`` hold exactly ``documents``. ``vectors`` has an embedding for each new or
        changed document (by id); unchanged ones keep theirs. Returns what changed.

        Qdrant is written first and SQLite committed last: if the process dies in between, SQLite
        still holds the old hashes, so the next sync redoes the (idempotent) Qdrant writes.
        ``repair`` also rewrites unchanged documents into Qdrant from SQLite (a full sync does).
        """
        from qdrant_client import models

        change = ScopeChange()
        now = datetime.now(timezone.utc)
        current = self.hashes(scope)
        seen = {doc.id for doc in documents}
        rows: list[ResourceRow] = []
        points: list = []
        for doc in documents:
            old = current.get(doc.id)
            if old == doc.content_hash:
                change.unchanged += 1
                continue
            vector = np.asarray(vectors[doc.id], dtype=np.float32)
            rows.append(ResourceRow(id=doc.id, scope=scope, account_id=doc.account_id, account_name=doc.account_name,
                                    region=doc.region, resource_type=doc.resource_type, name=doc.name,
                                    resource_id=doc.resource_id, state=doc.state, content_hash=doc.content_hash,
                                    text_hash=text_hash(doc), tags=json.dumps(doc.tags), text=doc.text,
                                    document=doc.model_dump_json(), vector=vector.tobytes(),
                                    updated_at=now))
            points.append(models.PointStruct(id=point_id(doc.id), vector=vector.tolist(),
                                             payload={**doc.model_dump(mode="json"), "scope": scope}))
            if old is None:
                change.added += 1
            else:
                change.updated += 1
        gone = [rid for rid in current if rid not in seen]
        change.removed = len(gone)
        if repair:
            unchanged = [doc for doc in documents if current.get(doc.id) == doc.content_hash]
            stored = self.vectors_for([d.id for d in unchanged])
            points += [models.PointStruct(id=point_id(d.id), vector=np.frombuffer(stored[d.id], dtype=np.float32).tolist(),
                                          payload={**d.model_dump(mode="json"), "scope": scope})
                       for d in unchanged if d.id in stored]
        if write_qdrant:
            for start in range(0, len(points), 256):
                self.qdrant.upsert(COLLECTION, points=points[start:start + 256], wait=True)
            if gone:
                self.qdrant.delete(COLLECTION, points_selector=models.PointIdsList(points=[point_id(r) for r in gone]))
        with Session(self.engine) as session:
            for row in rows:
                session.merge(row)
            for rid in gone:
                old_row = session.get(ResourceRow, rid)
                if old_row is not None:
                    session.delete(old_row)
            session.commit()
        return change

    def count(self) -> int:
        from sqlalchemy import func

        with Session(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(ResourceRow)).one())

    def document(self, resource_id: str) -> ResourceDocument | None:
        with Session(self.engine) as session:
            row = session.get(ResourceRow, resource_id)
        return ResourceDocument.model_validate_json(row.document) if row else None

    def documents(self, ids: list[str]) -> dict[str, ResourceDocument]:
        with Session(self.engine) as session:
            rows = session.exec(select(ResourceRow.id, ResourceRow.document).where(ResourceRow.id.in_(ids))).all()
        return {rid: ResourceDocument.model_validate_json(doc) for rid, doc in rows}

    def close(self) -> None:
        if self._qdrant is not None:
            self._qdrant.close()
            self._qdrant = None
        self.engine.dispose()

