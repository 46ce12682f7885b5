"""Where the estate lives on this machine: the embedded Qdrant collection ``aws_resources`` (payload =
the document, vector = its embedding) and, beside it, a SQLite table (SQLModel) of the same documents
with their content hashes and vectors.

Why both: Qdrant is the store of record and the path to a Qdrant server for teams, but its embedded
mode is a brute-force scan in Python (~150 ms at 10k points, ~1 GB RSS at 50k) and admits one process
per folder. The SQLite copy is what diffs are computed against (hash per id and scope) and what the
in-process lookup loads into numpy, so a search never has to open, lock or scan the collection.
Both are written in one step per scope; a scope that failed to sync is never touched.

Crash consistency: each scope is one SQLite transaction, written after Qdrant. A marker file
(``index/.writing``) exists while Qdrant may be ahead of SQLite; the next writer to open Qdrant after a
crash finds it and reconciles Qdrant to SQLite (orphan points deleted, missing or stale points rewritten),
so SQLite, the side diffs are computed against, is always the truth. A corrupt or locked file is one
clear sentence naming the file and ``cloudops index rebuild`` (IndexCorrupt, IndexBusy).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, event
from sqlmodel import Field, Session, SQLModel, create_engine, select

from app.config import env_seconds
from app.estate.documents import ResourceDocument
from app.estate.index_errors import IndexUnavailable

COLLECTION = "aws_resources"
WRITING_MARKER = ".writing"
REBUILD_HINT = "run `cloudops index rebuild` to rebuild the index from AWS (approvals and the audit trail are kept)"
SQLITE_MAGIC = b"SQLite format 3\x00"
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


def sqlite_engine(path: Path, *, index_file: bool = False) -> Engine:
    """A WAL SQLite engine. ``index_file``: the file is part of the rebuildable index (resources.db), so a
    damaged or locked file becomes IndexCorrupt / IndexBusy naming it and `cloudops index rebuild`
    (never for audit.db or state.db, which a rebuild does not touch)."""
    # How long a write waits for another writer's lock (CLOUDOPS_SQLITE_TIMEOUT_S, default 30 s).
    busy_timeout = env_seconds("CLOUDOPS_SQLITE_TIMEOUT_S", 30.0)
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": busy_timeout})

    @event.listens_for(engine, "handle_error")
    def _one_sentence(context) -> None:  # a damaged or locked index file is named, with the way out
        if not index_file:
            return
        exc = context.original_exception
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise IndexBusy(f"{path} is locked by another process ({exc}); try again when it ends, or, if no "
                            f"CloudOps process is running, {REBUILD_HINT}") from None
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError) or \
                isinstance(exc, sqlite3.OperationalError) and "disk I/O" in str(exc):
            raise IndexCorrupt(f"{path} is corrupt or unreadable ({exc}); {REBUILD_HINT}") from None

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):  # WAL: readers never block the syncing writer
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def local_qdrant_storage(client) -> sqlite3.Connection | None:
    """The SQLite connection behind the embedded collection (qdrant-client's local mode), or None
    when this qdrant-client keeps it elsewhere (tests/test_sync.py's WAL test fails if so)."""
    collection = getattr(getattr(client, "_client", None), "collections", {}).get(COLLECTION)
    storage = getattr(getattr(collection, "storage", None), "storage", None)
    return storage if isinstance(storage, sqlite3.Connection) else None


def wal_for_local_qdrant(client) -> bool:
    """Put the embedded collection's SQLite file in WAL mode with synchronous=NORMAL.

    qdrant-client's local mode commits every point in its own transaction; with SQLite's default
    rollback journal each commit fsyncs twice, which made writing a full sync's points about a third of
    the sync's non-embedding time. In WAL mode with synchronous=NORMAL a commit is an append: a killed
    process loses nothing committed and the file stays consistent; only a power cut can drop the last
    commits, and those are points that the crash marker and :meth:`ResourceStore.reconcile` rewrite
    from resources.db, which stays the truth. Returns whether the pragmas were applied.
    """
    storage = local_qdrant_storage(client)
    if storage is None:
        return False
    storage.execute("PRAGMA journal_mode=WAL")
    storage.execute("PRAGMA synchronous=NORMAL")
    return True


class IndexBusy(IndexUnavailable):
    """Another process holds the embedded Qdrant folder (its mode admits one process at a time), or
    resources.db stays locked past the busy timeout."""


class IndexCorrupt(IndexUnavailable):
    """resources.db or a file of the Qdrant folder is damaged: `cloudops index rebuild` makes it anew from AWS."""


def check_qdrant_folder(folder: Path) -> None:
    """A cheap probe of the embedded Qdrant folder (meta.json parses, each collection's storage.sqlite has
    the SQLite header), so that every command, not only the writers that open Qdrant, reports a damaged
    index at once instead of a traceback later. Raises IndexCorrupt naming the file."""
    meta = folder / "meta.json"
    if not folder.exists() or not meta.exists():
        return
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        names = list(data["collections"])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{meta} is corrupt or unreadable ({type(exc).__name__}); {REBUILD_HINT}") from None
    for name in names:
        storage = folder / "collection" / name / "storage.sqlite"
        try:
            with storage.open("rb") as handle:
                head = handle.read(len(SQLITE_MAGIC))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise IndexCorrupt(f"{storage} is unreadable ({exc.strerror}); {REBUILD_HINT}") from None
        if head and head != SQLITE_MAGIC:
            raise IndexCorrupt(f"{storage} is corrupt (not an SQLite file); {REBUILD_HINT}")


class ResourceStore:
    """Documents by scope (``account_id/region/service``) in SQLite, mirrored into Qdrant."""

    def __init__(self, directory: Path, qdrant_location: str | None = None, dimension: int = 384):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.engine = sqlite_engine(directory / "resources.db", index_file=True)
        SQLModel.metadata.create_all(self.engine, tables=[ResourceRow.__table__])
        self.dimension = dimension
        self._qdrant_location = qdrant_location or str(directory / "qdrant")
        self._qdrant_server = self._qdrant_location.startswith(("http://", "https://"))  # else a local folder
        if not self._qdrant_server:
            check_qdrant_folder(Path(self._qdrant_location))
        self._qdrant = None
        self._writes_in_flight = 0
        self._write_lock = threading.Lock()
        self._write_failed = False
        self.reconciled: dict[str, int] | None = None  # what the last crash repair did, when it ran

    # -- Qdrant, opened only by the writer ------------------------------------------------------
    @property
    def qdrant(self):
        if self._qdrant is None:
            from qdrant_client import QdrantClient, models

            loc = self._qdrant_location
            try:
                client = QdrantClient(url=loc) if self._qdrant_server else QdrantClient(path=loc)
            except RuntimeError as exc:
                if "already accessed" not in str(exc):
                    raise IndexCorrupt(f"the Qdrant folder {loc} cannot be opened ({exc}); {REBUILD_HINT}") from None
                raise IndexBusy(f"the index at {loc} is open in another CloudOps process (the app, or a sync); "
                                "try again when it ends, or run the command while the app runs so it goes "
                                f"through the app; if none is running, {REBUILD_HINT}") from None
            except Exception as exc:  # noqa: BLE001 - a damaged file in local mode raises anything (pickle, json, sqlite)
                if self._qdrant_server:
                    raise
                raise IndexCorrupt(f"the Qdrant folder {loc} is corrupt ({type(exc).__name__}); {REBUILD_HINT}") from None
            if not client.collection_exists(COLLECTION):
                client.create_collection(COLLECTION, vectors_config=models.VectorParams(
                    size=self.dimension, distance=models.Distance.COSINE))
            if not self._qdrant_server:
                wal_for_local_qdrant(client)
            self._qdrant = client
            if self._marker.exists():
                self.reconciled = self.reconcile()
        return self._qdrant

    # -- crash consistency ----------------------------------------------------------------------
    @property
    def _marker(self) -> Path:
        return self.directory / WRITING_MARKER

    def _begin_write(self) -> None:
        """Qdrant may now run ahead of SQLite: leave a marker (fsynced) that a crash would leave behind."""
        with self._write_lock:
            self._writes_in_flight += 1
            if not self._marker.exists():
                with open(self._marker, "w") as handle:
                    handle.write("a scope write was in progress; the next writer reconciles Qdrant to SQLite\n")
                    handle.flush()
                    os.fsync(handle.fileno())

    def _end_write(self, ok: bool) -> None:
        """Clear the marker once no write is in flight, unless one failed half-way (then the next writer
        to open the store reconciles, as after a crash)."""
        with self._write_lock:
            self._writes_in_flight -= 1
            self._write_failed = self._write_failed or not ok
            if self._writes_in_flight == 0 and not self._write_failed:
                self._marker.unlink(missing_ok=True)

    def reconcile(self) -> dict[str, int]:
        """Make Qdrant hold exactly SQLite's documents: delete points SQLite does not know (a scope killed
        between its Qdrant write and its SQLite commit), rewrite points that are missing or whose payload's
        content hash differs. SQLite is the truth because it is committed last, per scope, atomically."""
        from qdrant_client import models

        client = self._qdrant
        with Session(self.engine) as session:
            truth = {point_id(rid): (rid, h) for rid, h in session.exec(select(ResourceRow.id, ResourceRow.content_hash))}
        seen = {str(point.id): (point.payload or {}).get("content_hash")
                for point in self._points(client, with_payload=["content_hash"])}
        orphans = [pid for pid in seen if pid not in truth]
        stale = [truth[pid][0] for pid in truth if seen.get(pid) != truth[pid][1]]
        if orphans:
            client.delete(COLLECTION, points_selector=models.PointIdsList(points=orphans), wait=True)
        for start in range(0, len(stale), 256):
            with Session(self.engine) as session:
                rows = session.exec(select(ResourceRow).where(ResourceRow.id.in_(stale[start:start + 256]))).all()
            client.upsert(COLLECTION, wait=True, points=[
                models.PointStruct(id=point_id(r.id), vector=np.frombuffer(r.vector, dtype=np.float32).tolist(),
                                   payload={**json.loads(r.document), "scope": r.scope}) for r in rows])
        self._marker.unlink(missing_ok=True)
        return {"orphans_deleted": len(orphans), "points_rewritten": len(stale)}

    @staticmethod
    def _points(client, with_payload: bool | list[str]) -> Iterator:
        """Every point of the collection, without vectors, a page of 1024 at a time."""
        offset = None
        while True:
            points, offset = client.scroll(COLLECTION, limit=1024, offset=offset, with_vectors=False,
                                           with_payload=with_payload)
            yield from points
            if offset is None:
                return

    def qdrant_ids(self) -> set[str]:
        """Every point id in the collection (for consistency checks)."""
        return {str(p.id) for p in self._points(self.qdrant, with_payload=False)}

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
        rows: list[dict] = []
        points: list = []
        for doc in documents:
            old = current.get(doc.id)
            if old == doc.content_hash:
                change.unchanged += 1
                continue
            vector = np.asarray(vectors[doc.id], dtype=np.float32)
            payload = doc.model_dump(mode="json")
            rows.append(dict(id=doc.id, scope=scope, account_id=doc.account_id, account_name=doc.account_name,
                             region=doc.region, resource_type=doc.resource_type, name=doc.name,
                             resource_id=doc.resource_id, state=doc.state, content_hash=doc.content_hash,
                             text_hash=text_hash(doc), tags=json.dumps(doc.tags), text=doc.text,
                             document=json.dumps(payload, separators=(",", ":"), ensure_ascii=False), vector=vector.tobytes(),
                             updated_at=now))
            points.append(models.PointStruct(id=point_id(doc.id), vector=vector.tolist(),
                                             payload={**payload, "scope": scope}))
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
        writing = write_qdrant and bool(points or gone)
        if writing:
            self.qdrant  # noqa: B018 - open (and, after a crash, reconcile) before the marker is set
            self._begin_write()
        ok = False
        try:
            if writing:
                for start in range(0, len(points), 256):
                    self.qdrant.upsert(COLLECTION, points=points[start:start + 256], wait=True)
                if gone:
                    self.qdrant.delete(COLLECTION, points_selector=models.PointIdsList(points=[point_id(r) for r in gone]))
            table = ResourceRow.__table__
            with self.engine.begin() as connection:  # one transaction: a kill leaves the old scope or the new one
                if rows:  # one executemany, not an ORM merge (a SELECT) per row
                    connection.execute(table.insert().prefix_with("OR REPLACE"), rows)
                for start in range(0, len(gone), 500):
                    connection.execute(table.delete().where(table.c.id.in_(gone[start:start + 500])))
            ok = True
        finally:
            if writing:
                self._end_write(ok)
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

