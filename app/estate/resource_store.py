"""Where the estate lives on this machine: the collection ``aws_resources`` in one embedded Qdrant Edge
shard (``$CLOUDOPS_HOME/index/edge``), and the sync status in SQLite (``resources.db``).

Each resource is one point: its id is a 63-bit integer derived from the ARN (:func:`point_id`), its
payload the document (a JSON string, beside the flat fields the lookup filters on, each with a payload
index), and its vectors

* ``words``: BM25 of the document's words (Qdrant's own BM25, the same token ids as a Qdrant server's),
* ``names``: the character trigrams of its name, for typos and partial names,
* ``dense``: the meaning vector of a short text (:func:`app.estate.documents.dense_text`).

Why one store: Edge is Qdrant's engine in the process (HNSW, payload indexes, filters, sparse vectors,
counts, facets), so the lookup queries it directly and nothing is kept twice. The content hashes live in
the payload beside the document they hash, so there is no second store to keep consistent and no crash
marker: a write is a batch of Edge operations behind Edge's write-ahead log; a killed sync leaves some
points of a scope new and some old, each whole, and the next sync of that scope compares hashes and
finishes the job. SQLite keeps what Edge does not hold: the sync status per scope.

Progressive writes: :meth:`ResourceStore.write_listing` writes payload, words and names, so a resource
is found by name, tags and words as soon as its listing is written; :meth:`write_vectors` adds the
meaning vectors as embedding catches up. A point whose dense vector is missing is "pending" (counted by
:meth:`semantic_pending`, so a search can say its semantic results are partial). Only a document whose
dense text changed (``dense_hash``) loses its vector and is embedded again.

Concurrency: one process owns the shard (``edge/.lock``; a second gets :class:`IndexBusy`, one
sentence). In that process one writer (the sync's writer thread, under ``_write_lock``) and any number of
readers share the shard object. Qdrant Edge holds the GIL while it builds HNSW (``optimize()``), so the
build runs in a child process on a copy of the shard (:meth:`ResourceStore.optimize_in_background`), and
the optimized copy replaces the live shard when it is done, the writes made meanwhile replayed onto it.

A damaged or locked file is one sentence naming it and ``cloudops index rebuild`` (IndexCorrupt,
IndexBusy). ``qdrant_location`` (a Qdrant server URL) also mirrors every write to that server, with the
same payload schema and point ids: the team path (docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_edge import (Bm25, Bm25Config, CountRequest, Distance, EdgeConfig, EdgeShard, EdgeSparseVectorParams,
                         EdgeVectorParams, FacetRequest, FieldCondition, Filter, HasVectorCondition, HnswIndexConfig,
                         KeywordIndexParams, MatchValue, Memory, Modifier, Point, PointVectors,
                         ScalarQuantizationConfig, ScalarType, ScrollRequest, SparseVector, UpdateOperation)
from sqlalchemy import Engine, event, text
from sqlmodel import create_engine

from agent.text import last_segment, normalise
from app.config import env_seconds
from app.estate.documents import ResourceDocument, dense_hash
from app.estate.index_errors import IndexUnavailable
from app.estate.tagexpr import canon

COLLECTION = "aws_resources"
DENSE, WORDS, NAMES = "dense", "words", "names"
DIMENSION = 384
REBUILD_HINT = "run `cloudops index rebuild` to rebuild the index from AWS (approvals and the audit trail are kept)"
EDGE_FOLDER = "edge"
LOCK_FILE = ".lock"
CURRENT_FILE = "CURRENT"
WRITE_BATCH = 512
MAX_SPACED_WORDS = 6
# Payload fields with an index (filters, counts and facets answer from these): field -> kind.
KEYWORD_FIELDS = ("account_id", "account_name", "region", "resource_type", "service", "state_low", "tag_pairs",
                  "tag_keys", "scope", "keys", "spaced", "group")
PREFIX_FIELDS = ("name_low",)  # keyword with prefix matching: autocomplete
# Legacy index files (the SQLite copy with numpy vectors, the qdrant-client folder, the crash marker).
LEGACY = ("qdrant", ".writing")
_SEPARATORS = re.compile(r"[-_.]+")
_TRIGRAM_SEPARATORS = re.compile(r"[-_./:\s]+")


class IndexBusy(IndexUnavailable):
    """Another process owns the index (the app, or a sync), or resources.db stays locked past the busy timeout."""


class IndexCorrupt(IndexUnavailable):
    """A file of the index is damaged: `cloudops index rebuild` makes it anew from AWS."""


# -- what a point is made of ----------------------------------------------------------------------
def point_id(arn: str) -> int:
    """The point id of a resource: 63 bits of BLAKE2b of its ARN. Stable across processes, machines and
    releases (a team server holds the same ids); integers keep Edge's id tracker small. Two ARNs share
    an id with odds of about n²/2^64 (1e-7 at a million resources)."""
    return int.from_bytes(hashlib.blake2b(arn.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def spaced_name(name: str | None) -> str | None:
    """A name's spelling with spaces for its separators, when it has at least two words and they are
    plain words: payments-queue -> "payments queue"; None for one-word names and for ids."""
    if not name:
        return None
    words = [w for w in _SEPARATORS.split(normalise(name)) if w]
    if not 2 <= len(words) <= MAX_SPACED_WORDS or not all(re.fullmatch(r"[a-z0-9]+", w) for w in words):
        return None
    return " ".join(words)


def exact_keys(doc: ResourceDocument) -> list[str]:
    """What a query may type to name the resource exactly: its ARN/id, name, API id, the id's last segment, and
    an instance's IP addresses (operators search by the address in an alert)."""
    addresses = {normalise(str(doc.attributes[k])) for k in ("private_ip", "public_ip") if doc.attributes.get(k)}
    return sorted({normalise(doc.id), normalise(doc.name), normalise(doc.resource_id),
                   normalise(last_segment(doc.resource_id)), *addresses} - {""})


def trigram_ids(text_: str) -> list[int]:
    """The character trigrams of a name (separators read as spaces, padded), as sparse indices."""
    words = " ".join(w for w in _TRIGRAM_SEPARATORS.split(normalise(text_)) if w)
    if not words:
        return []
    padded = f"  {words} "
    return sorted({zlib.crc32(padded[i:i + 3].encode("utf-8")) for i in range(len(padded) - 2)})


def tag_pairs(tags: dict[str, str]) -> list[str]:
    """Tags as indexed keywords: lower-cased key, canonical value (prod = production = prd)."""
    return sorted({f"{k.lower()}={canon(v)}" for k, v in tags.items()})


def _bm25():
    global _BM25_MODEL
    if _BM25_MODEL is None:
        _BM25_MODEL = Bm25(Bm25Config())
    return _BM25_MODEL


_BM25_MODEL = None


def words_vector(text_: str, *, query: bool = False):
    """BM25 sparse vector of ``text_`` (Qdrant's tokenizer, English stemming and stop words)."""
    model = _bm25()
    return model.embed_query(text_) if query else model.embed_document(text_)


def names_vector(text_: str):
    ids = trigram_ids(text_)
    return SparseVector(ids, [1.0] * len(ids))


def payload_of(doc: ResourceDocument, scope: str, now: str) -> dict[str, Any]:
    """The point's payload: the document (a JSON string: converting nested objects is most of the cost of an
    Edge write, measured 2.8x) and the flat fields the lookup filters, counts and facets on."""
    body = doc.model_dump_json(exclude={"synced_at"})
    payload: dict[str, Any] = {
        "id": doc.id, "name": doc.name, "name_low": normalise(doc.name), "resource_id": doc.resource_id,
        "resource_type": doc.resource_type, "service": doc.service, "account_id": doc.account_id,
        "account_name": doc.account_name, "region": doc.region, "state": doc.state,
        "state_low": (doc.state or "").lower(), "tags": doc.tags, "tag_pairs": tag_pairs(doc.tags),
        "tag_keys": sorted({k.lower() for k in doc.tags}), "keys": exact_keys(doc), "scope": scope,
        "group": "|".join((doc.account_id, doc.account_name, doc.region, scope.rsplit("/", 1)[-1], doc.resource_type)),
        "content_hash": doc.content_hash, "dense_hash": dense_hash(doc), "read_at": now, "document": body,
    }
    spaced = spaced_name(doc.name)
    if spaced:
        payload["spaced"] = spaced
    return payload


def document_of(payload: dict[str, Any], synced_at: datetime | None = None) -> ResourceDocument:
    doc = ResourceDocument.model_validate_json(payload["document"])
    read_at = payload.get("read_at")
    doc.synced_at = synced_at or (datetime.fromisoformat(read_at) if read_at else None)
    return doc


def edge_config():
    """The shard's configuration, chosen for a million resources in under 1 GB of RAM
    (bench/bench_lookup.py): dense vectors on disk (memory-mapped) with int8 copies in RAM for search,
    rescored from the originals (binary quantization was tried: it missed true neighbours even rescored);
    the HNSW graph, the sparse indexes and the payload (with the document) on disk, so only the pages a
    search touches are resident."""
    return EdgeConfig(
        vectors={DENSE: EdgeVectorParams(size=DIMENSION, distance=Distance.Cosine, on_disk=True)},
        sparse_vectors={WORDS: EdgeSparseVectorParams(modifier=Modifier.Idf, memory=Memory.Cold),
                        NAMES: EdgeSparseVectorParams(modifier=Modifier.Idf, memory=Memory.Cold)},
        quantization_config=ScalarQuantizationConfig(ScalarType.Int8, quantile=0.99, always_ram=True),
        hnsw_config=HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10000, memory=Memory.Cold),
        payload_memory=Memory.Cold,
    )


# -- SQLite (sync status; approvals and audit use the same engine factory) -------------------------
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


# -- the shard's folder: lock, current generation, errors ----------------------------------------
_PATH_IN_MESSAGE = re.compile(r"(/[^\s:'\"]+)")


def _edge_error(exc: BaseException, folder: Path) -> IndexUnavailable:
    """Edge's error as one sentence: busy when another process holds the shard's WAL, else corrupt,
    naming the file Edge names (or the shard folder)."""
    message = str(exc)
    if "WouldBlock" in message or "already" in message.lower() and "lock" in message.lower():
        return IndexBusy(f"the index at {folder} is open in another CloudOps process (the app, or a sync); try "
                         f"again when it ends, or run the command while the app runs so it goes through the app; "
                         f"if none is running, {REBUILD_HINT}")
    named = [p for p in _PATH_IN_MESSAGE.findall(message) if p.startswith(str(folder))]
    where = max(named, key=len) if named else str(folder)
    reason = re.sub(r"\s+", " ", message.replace("Service runtime error: ", ""))[:160].rstrip(".")
    return IndexCorrupt(f"{where} is corrupt or unreadable ({reason}); {REBUILD_HINT}")


def check_edge_folder(edge_folder: Path) -> None:
    """A cheap probe of the shard folder (``CURRENT`` names a shard, its JSON configuration parses), so
    that every command, not only those that open the shard, reports a damaged index at once instead of a
    traceback later. Raises IndexCorrupt naming the file. Binary segment files are checked by Edge when a
    command opens the shard."""
    pointer = edge_folder / CURRENT_FILE
    if not pointer.exists():
        return
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{pointer} is unreadable ({type(exc).__name__}); {REBUILD_HINT}") from None
    folder = edge_folder / name
    if not re.fullmatch(r"shard-\d+", name) or not folder.is_dir():
        raise IndexCorrupt(f"{pointer} names no shard of the index ({name[:40]!r}); {REBUILD_HINT}")
    config = folder / "edge_config.json"
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{config} is corrupt or unreadable ({type(exc).__name__}); {REBUILD_HINT}") from None


def _edge_failure(exc: BaseException) -> bool:
    """Edge reports every runtime failure (I/O, a damaged file, a panic) as a bare Exception or pyo3's
    PanicException; a TypeError or ValueError is a bug of ours and must surface as one."""
    return type(exc) is Exception or type(exc).__name__ == "PanicException"


class _GuardedShard:
    """The Edge shard with every call's runtime failure turned into one sentence (IndexCorrupt naming the
    file, or IndexBusy): a damaged page is found when it is read, which may be long after opening."""
    def __init__(self, shard, folder: Path):
        self._shard = shard
        self._folder = folder

    def __getattr__(self, name: str):
        attribute = getattr(self._shard, name)
        if not callable(attribute):
            return attribute
        folder = self._folder

        def guarded(*args, **kwargs):
            try:
                return attribute(*args, **kwargs)
            except BaseException as exc:
                if _edge_failure(exc):
                    raise _edge_error(exc, folder) from None
                raise

        return guarded


class _FolderLock:
    """An exclusive, non-blocking lock on ``edge/.lock`` held while this process owns the shard."""
    def __init__(self, path: Path):
        self.path = path
        self.handle = None

    def acquire(self) -> None:
        import portalocker

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.exceptions.LockException:
            handle.close()
            raise IndexBusy(f"the index at {self.path.parent} is open in another CloudOps process (the app, or a "
                            "sync); try again when it ends, or run the command while the app runs so it goes "
                            f"through the app; if none is running, {REBUILD_HINT}") from None
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            import portalocker

            portalocker.unlock(self.handle)
            self.handle.close()
            self.handle = None


def folder_is_locked(edge_folder: Path) -> bool:
    """Whether a process owns this shard folder now (for `cloudops index rebuild`)."""
    lock = _FolderLock(edge_folder / LOCK_FILE)
    try:
        lock.acquire()
    except IndexBusy:
        return True
    lock.release()
    return False


@dataclass
class ScopeChange:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0


@dataclass
class ListingWrite:
    """What writing one scope's listing did, and the documents whose meaning vector is still to make."""
    change: ScopeChange
    to_embed: list[ResourceDocument] = field(default_factory=list)


@dataclass
class _Stored:
    content_hash: str
    dense_hash: str
    has_dense: bool


class ResourceStore:
    """The estate's documents in one Edge shard, by scope (``account_id/region/service``)."""
    def __init__(self, directory: Path, qdrant_location: str | None = None, dimension: int = DIMENSION):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.engine = sqlite_engine(directory / "resources.db", index_file=True)
        self.dimension = dimension
        self.edge_folder = directory / EDGE_FOLDER
        check_edge_folder(self.edge_folder)
        self._lock = _FolderLock(self.edge_folder / LOCK_FILE)
        self._shard = None
        self._shard_path: Path | None = None
        self._open_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self.generation = 0  # bumped by every write: readers' caches (regions, accounts, counts) key on it
        self._pending: tuple[int, int] | None = None  # (generation, points without a dense vector)
        self._replay: list | None = None  # writes made while an optimized copy is being built
        self._optimizer: subprocess.Popen | None = None
        self._retired: list = []
        self.mirror = TeamMirror(qdrant_location) if qdrant_location else None
        self.mirror_error: str | None = None

    # -- opening ------------------------------------------------------------------------------------
    @property
    def shard(self):
        """The live Edge shard, opened (and created) on first use: takes the folder lock."""
        shard = self._shard
        if shard is None:
            with self._open_lock:
                if self._shard is None:
                    self._open()
                shard = self._shard
        return shard

    def open(self) -> "ResourceStore":
        """Open the shard now (take the single-owner lock before any AWS call); returns self."""
        self.shard  # noqa: B018
        return self

    # The name writers used for the embedded collection before Edge: opening it takes the lock.
    qdrant = shard

    def _open(self) -> None:
        self._lock.acquire()
        try:
            self._drop_legacy()
            current = self._current_folder()
            self._shard = self._load(current)
            self._shard_path = current
            self._ensure_indexes()
            self._remove_stale(keep=current)
        except BaseException:
            self._lock.release()
            raise

    def _current_folder(self) -> Path:
        """The live shard's folder named by ``edge/CURRENT`` (made, with an empty shard, on first use)."""
        pointer = self.edge_folder / CURRENT_FILE
        if not pointer.exists():
            folder = self.edge_folder / "shard-1"
            if folder.exists():
                shutil.rmtree(folder)
            self._create(folder)
            self._point_to(folder)
            return folder
        check_edge_folder(self.edge_folder)
        return self.edge_folder / pointer.read_text(encoding="utf-8").strip()

    def _point_to(self, folder: Path) -> None:
        pointer = self.edge_folder / CURRENT_FILE
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(folder.name + "\n", encoding="utf-8")
        tmp.replace(pointer)

    def _create(self, folder: Path):
        shard = EdgeShard.create(str(folder), edge_config())
        self._create_indexes(shard)
        shard.close()

    @staticmethod
    def _create_indexes(shard) -> None:
        have = set(shard.info().payload_schema)
        for name in KEYWORD_FIELDS:
            if name not in have:
                shard.update(UpdateOperation.create_field_index(name, KeywordIndexParams(memory=Memory.Cold)))
        for name in PREFIX_FIELDS:
            if name not in have:
                shard.update(UpdateOperation.create_field_index(name, KeywordIndexParams(prefix=True, memory=Memory.Cold)))

    def _ensure_indexes(self) -> None:
        self._create_indexes(self._shard)  # a shard Edge opened but cannot index is damaged: IndexCorrupt

    def _load(self, folder: Path):
        try:
            return _GuardedShard(EdgeShard.load(str(folder)), folder)
        except BaseException as exc:  # Edge raises one type for every failure; its message says which
            if _edge_failure(exc):
                raise _edge_error(exc, folder) from None
            raise

    def _remove_stale(self, keep: Path) -> None:
        """Shard folders left by an earlier optimizer run or a replaced generation."""
        for path in self.edge_folder.iterdir():
            if path.is_dir() and path != keep and re.fullmatch(r"(shard|build)-\d+", path.name):
                shutil.rmtree(path, ignore_errors=True)

    def _drop_legacy(self) -> None:
        """An index written before Edge: its SQLite copy of the documents and its qdrant-client folder are
        caches of AWS; the next sync fills the shard."""
        for name in LEGACY:
            path = self.directory / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink(missing_ok=True)
        with self.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS resource"))

    # -- writing ------------------------------------------------------------------------------------
    def _apply(self, operations: list) -> None:
        """Apply Edge operations in order (the write lock is held); remembered for replay while an
        optimized copy is being built, and mirrored to the team server when one is configured."""
        shard = self.shard
        for operation in operations:
            shard.update(operation)  # a write Edge refuses (a damaged shard) is IndexCorrupt, one sentence
            if self._replay is not None:
                self._replay.append(operation)
        self.generation += 1

    def _scope_state(self, scope: str) -> dict[str, tuple[int, _Stored]]:
        """arn -> (point id, hashes, has a dense vector) for every point of ``scope``."""
        in_scope = FieldCondition(key="scope", match=MatchValue(scope))
        with_dense = {pid for pid, _ in self._scroll(Filter(must=[in_scope, HasVectorCondition(DENSE)]), False)}
        return {payload["id"]: (pid, _Stored(payload.get("content_hash", ""), payload.get("dense_hash", ""),
                                             pid in with_dense))
                for pid, payload in self._scroll(Filter(must=[in_scope]), ["id", "content_hash", "dense_hash"])}

    def _scroll(self, flt, with_payload, page: int = 2048) -> Iterator[tuple[int, dict]]:
        """(point id, payload) of every point ``flt`` lets through, a page at a time."""
        offset = None
        while True:
            records, offset = self.shard.scroll(ScrollRequest(offset=offset, limit=page, filter=flt,
                                                              with_payload=with_payload, with_vector=False))
            for record in records:
                yield record.id, record.payload or {}
            if offset is None:
                return

    def write_listing(self, scope: str, documents: list[ResourceDocument], *, repair: bool = False) -> ListingWrite:
        """Make ``scope`` hold exactly ``documents`` (payload, words, names), searchable from now on.

        A document whose content hash is unchanged is not written; one whose dense text is unchanged keeps its
        meaning vector; the others (and any point still waiting for one) are returned to embed. ``repair``
        rewrites unchanged documents too (their vectors kept)."""
        now = datetime.now(timezone.utc).isoformat()
        result = ListingWrite(ScopeChange())
        with self._write_lock:
            stored = self._scope_state(scope)
            write: list[tuple[ResourceDocument, bool]] = []  # (document, keep its dense vector)
            for doc in documents:
                old = stored.get(doc.id)
                new_dense = dense_hash(doc)
                keeps = old is not None and old[1].has_dense and old[1].dense_hash == new_dense
                if old is not None and old[1].content_hash == doc.content_hash:
                    result.change.unchanged += 1
                    if not old[1].has_dense:
                        result.to_embed.append(doc)  # listed before, never embedded (a crash, a stopped sync)
                    if repair:
                        write.append((doc, keeps))
                    continue
                if old is None:
                    result.change.added += 1
                else:
                    result.change.updated += 1
                write.append((doc, keeps))
                if not keeps:
                    result.to_embed.append(doc)
            listed = {doc.id for doc in documents}
            gone = [pid for arn, (pid, _) in stored.items() if arn not in listed]
            result.change.removed = len(gone)
            operations, written = [], []
            for start in range(0, len(write), WRITE_BATCH):
                batch = write[start:start + WRITE_BATCH]
                kept = self._dense_vectors([point_id(d.id) for d, keep in batch if keep])
                points = []
                for doc, keep in batch:
                    pid = point_id(doc.id)
                    vector = {WORDS: words_vector(doc.text), NAMES: names_vector(doc.name)}
                    if keep and pid in kept:
                        vector[DENSE] = kept[pid]
                    elif keep:  # the vector vanished between the two reads: embed again
                        result.to_embed.append(doc)
                    points.append(Point(id=pid, vector=vector, payload=payload_of(doc, scope, now)))
                operations.append(UpdateOperation.upsert_points(points))
                written += points
            if gone:
                operations.append(UpdateOperation.delete_points(gone))
            if operations:
                self._apply(operations)
                if self.mirror is not None:
                    self._mirrored(lambda m: m.write(written, gone))
        return result

    def _dense_vectors(self, ids: list[int]) -> dict[int, list[float]]:
        if not ids:
            return {}
        records = self.shard.retrieve(ids, with_payload=False, with_vector=[DENSE])
        return {r.id: r.vector[DENSE] for r in records if r.vector and DENSE in r.vector}

    def write_vectors(self, documents: list[ResourceDocument], vectors) -> int:
        """Add the meaning vectors of ``documents`` (made from :func:`app.estate.documents.dense_text`). A
        document that changed again since (another dense text now stored) or was deleted is skipped. Returns
        how many were written."""
        if not documents:
            return 0
        with self._write_lock:
            ids = [point_id(d.id) for d in documents]
            current = {r.id: (r.payload or {}).get("dense_hash")
                       for r in self.shard.retrieve(ids, with_payload=["dense_hash"], with_vector=False)}
            updates = [PointVectors(pid, {DENSE: np.asarray(vector, dtype=np.float32).tolist()})
                       for pid, doc, vector in zip(ids, documents, vectors) if current.get(pid) == dense_hash(doc)]
            for start in range(0, len(updates), WRITE_BATCH):
                self._apply([UpdateOperation.update_vectors(updates[start:start + WRITE_BATCH])])
            if self.mirror is not None and updates:
                written = {u.id for u in updates}
                self._mirrored(lambda m: m.write_vectors([(pid, v) for pid, v in zip(ids, vectors) if pid in written]))
        return len(updates)

    def apply_scope(self, scope: str, documents: list[ResourceDocument], vectors: dict[str, np.ndarray] | None = None,
                    *, write_qdrant: bool = True, repair: bool = False) -> ScopeChange:
        """Write a scope's listing and, at once, the given meaning vectors (by document id) of those that
        need one: for callers that embed themselves (tests, the lookup evaluation). ``write_qdrant`` is
        accepted for old callers; there is one store."""
        written = self.write_listing(scope, documents, repair=repair)
        if vectors:
            ready = [d for d in written.to_embed if d.id in vectors]
            self.write_vectors(ready, [vectors[d.id] for d in ready])
        return written.change

    def pending_documents(self, limit: int | None = None) -> list[ResourceDocument]:
        """Documents still without a meaning vector (listed by an earlier sync that did not finish embedding)."""
        out = []
        for _, payload in self._scroll(Filter(must_not=[HasVectorCondition(DENSE)]), ["document", "read_at"]):
            out.append(document_of(payload))
            if limit is not None and len(out) >= limit:
                break
        return out

    def semantic_pending(self) -> int:
        """How many resources are searchable by name and words but not yet by meaning (cached per write)."""
        cached = self._pending
        if cached is not None and cached[0] == self.generation:
            return cached[1]
        generation = self.generation
        count = self.shard.count(CountRequest(exact=True, filter=Filter(must_not=[HasVectorCondition(DENSE)])))
        self._pending = (generation, int(count))
        return int(count)

    def _mirrored(self, action) -> None:
        """A write to the team server: its failure is recorded (the sync reports it), never undoes the local one."""
        try:
            action(self.mirror)
            self.mirror_error = None
        except Exception as exc:  # noqa: BLE001 - the local index is the one this client searches
            self.mirror_error = f"the team Qdrant at {self.mirror.location} was not written ({type(exc).__name__}: {exc})"

    # -- HNSW off the hot path ------------------------------------------------------------------------
    def needs_optimizing(self) -> bool:
        """Whether enough meaning vectors are outside an HNSW graph that building one pays off (Edge
        searches them by exact scan until then; a few thousand cost well under a millisecond)."""
        info = self.shard.info()
        # Edge counts sparse vectors as indexed from the start; dense ones once they are in a graph.
        in_graph = max(0, info.indexed_vectors_count - 2 * info.points_count)
        with_dense = info.points_count - self.semantic_pending()
        return with_dense - in_graph >= OPTIMIZE_MIN_POINTS

    def optimize_in_background(self) -> bool:
        """Build the HNSW graph (Edge's ``optimize()``) in a child process on a copy of the shard, and make
        the copy live when it is done, replaying the writes made meanwhile. Why not in a thread: Edge holds
        the GIL for the whole build (130 s at 100k points), which would stop every search of this process.
        Returns whether a build was started."""
        with self._write_lock:
            if self._optimizer is not None or not self.needs_optimizing():
                return False
            self.shard.flush()
            number = int(self._shard_path.name.split("-")[1]) + 1
            build = self.edge_folder / f"build-{number}"
            shutil.rmtree(build, ignore_errors=True)
            shutil.copytree(self._shard_path, build)
            self._replay = []
            self._optimizer = subprocess.Popen([sys.executable, "-m", "app.estate.resource_store", "optimize",
                                                str(build)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.PIPE)
        threading.Thread(target=self._adopt_when_built, args=(build, number), name="edge-optimizer",
                         daemon=True).start()
        return True

    def _adopt_when_built(self, build: Path, number: int) -> None:
        proc = self._optimizer
        if proc is None:
            return
        proc.wait()
        self.adopt(build, number, ok=proc.returncode == 0)

    def adopt(self, build: Path, number: int, *, ok: bool) -> bool:
        """Make the optimized copy live: load it, replay the writes made since the copy, point CURRENT at it.
        The old shard object is retired (closed with the store), never closed under a reader."""
        with self._write_lock:
            replay, self._replay, self._optimizer = self._replay or [], None, None
            if not ok or self._shard is None:
                shutil.rmtree(build, ignore_errors=True)
                return False
            folder = self.edge_folder / f"shard-{number}"
            build.rename(folder)
            try:
                shard = self._load(folder)
                for operation in replay:
                    shard.update(operation)
                shard.flush()
            except Exception:  # noqa: BLE001 - keep serving from the shard we have
                shutil.rmtree(folder, ignore_errors=True)
                return False
            self._point_to(folder)
            self._retired.append((self._shard, self._shard_path))
            self._shard, self._shard_path = shard, folder
            self.generation += 1
        return True

    def wait_for_optimizer(self, timeout: float | None = None) -> None:
        """Block until a background HNSW build ends (benchmarks, tests, a CLI about to exit)."""
        proc = self._optimizer
        if proc is not None:
            proc.wait(timeout)
        for thread in threading.enumerate():
            if thread.name == "edge-optimizer":
                thread.join(timeout)

    # -- reading ------------------------------------------------------------------------------------
    def count(self, flt=None) -> int:
        return int(self.shard.count(CountRequest(exact=True, filter=flt)))

    def facet(self, key: str, flt=None, limit: int = 10000) -> list[tuple[Any, int]]:
        """(value, count) of a keyword payload field over the points ``flt`` lets through."""
        hits = self.shard.facet(FacetRequest(key=key, limit=limit, exact=True, filter=flt)).hits
        return [(h.value, int(h.count)) for h in hits]

    def synced_count(self) -> int:
        """Resources counted by the last successful sync of each scope, from SQLite alone: what `cloudops
        status` shows without opening the shard (so it works while the app owns it)."""
        with self.engine.connect() as connection:
            if not connection.execute(text("SELECT name FROM sqlite_master WHERE name='sync_status'")).first():
                return 0
            return int(connection.execute(text("SELECT COALESCE(SUM(count), 0) FROM sync_status")).scalar())

    def scope_synced_at(self) -> dict[str, datetime]:
        """scope -> its last successful sync (UTC)."""
        with self.engine.connect() as connection:
            if not connection.execute(text("SELECT name FROM sqlite_master WHERE name='sync_status'")).first():
                return {}
            rows = connection.execute(text("SELECT scope, last_success FROM sync_status "
                                           "WHERE last_success IS NOT NULL")).all()
        out = {}
        for scope, when in rows:
            value = when if isinstance(when, datetime) else datetime.fromisoformat(str(when))
            out[scope] = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return out

    def documents(self, ids: Iterable[str]) -> dict[str, ResourceDocument]:
        """Documents by id (ARN), each with ``synced_at`` (its scope's last successful sync, else the time
        the document was written)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        records = self.shard.retrieve([point_id(i) for i in wanted], with_payload=["document", "read_at", "scope"],
                                      with_vector=False)
        synced = self.scope_synced_at()
        docs = {}
        for record in records:
            payload = record.payload or {}
            doc = document_of(payload, synced.get(payload.get("scope", "")))
            docs[doc.id] = doc
        return docs

    def document(self, resource_id: str) -> ResourceDocument | None:
        return self.documents([resource_id]).get(resource_id)

    def known(self, scope: str) -> dict[str, ResourceDocument]:
        """The scope's stored documents by resource_id: what an incremental listing may reuse."""
        docs = [document_of(p) for _, p in self._scroll(Filter(must=[FieldCondition(key="scope", match=MatchValue(scope))]),
                                                         ["document", "read_at"])]
        return {d.resource_id: d for d in docs}

    def hashes(self, scope: str) -> dict[str, str]:
        return {arn: stored.content_hash for arn, (_, stored) in self._scope_state(scope).items()}

    def all_hashes(self) -> dict[str, tuple[str, str]]:
        """id -> (scope, content hash) for every stored document."""
        return {p["id"]: (p.get("scope", ""), p.get("content_hash", ""))
                for _, p in self._scroll(None, ["id", "scope", "content_hash"])}

    def all_documents(self, flt=None) -> Iterator[ResourceDocument]:
        for _, payload in self._scroll(flt, ["document", "read_at"]):
            yield document_of(payload)

    def qdrant_ids(self) -> set[int]:
        """Every point id in the shard (for consistency checks)."""
        return {pid for pid, _ in self._scroll(None, False)}

    def close(self) -> None:
        proc = self._optimizer
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        with self._open_lock:
            for shard, folder in self._retired:  # replaced by an optimized copy: nobody reads them now
                shard.close()
                shutil.rmtree(folder, ignore_errors=True)
            self._retired = []
            if self._shard is not None:
                try:
                    self._shard.flush()
                finally:
                    self._shard.close()
                    self._shard = None
                    self._lock.release()
        if self.mirror is not None:
            self.mirror.close()
        self.engine.dispose()


OPTIMIZE_MIN_POINTS = 20000


class TeamMirror:
    """The team path: the same collection (point ids, payload schema, named vectors) written to a Qdrant
    server through qdrant-client (``QdrantClient(url=...)``; a folder location works too, for tests), so a
    team can share one estate view. Only written; this client searches its own shard."""
    def __init__(self, location: str):
        self.location = location
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from qdrant_client import QdrantClient, models

            remote = self.location.startswith(("http://", "https://"))
            client = QdrantClient(url=self.location) if remote else QdrantClient(path=self.location)
            if not client.collection_exists(COLLECTION):
                client.create_collection(
                    COLLECTION, vectors_config={DENSE: models.VectorParams(size=DIMENSION, distance=models.Distance.COSINE)},
                    sparse_vectors_config={WORDS: models.SparseVectorParams(modifier=models.Modifier.IDF),
                                           NAMES: models.SparseVectorParams(modifier=models.Modifier.IDF)})
                if remote:  # payload indexes mean nothing to the local mode
                    for name in (*KEYWORD_FIELDS, *PREFIX_FIELDS):
                        client.create_payload_index(COLLECTION, name, models.PayloadSchemaType.KEYWORD)
            self._client = client
        return self._client

    def write(self, edge_points: list, gone: list[int]) -> None:
        """The very points written to the local shard (ids, payload, vectors), and the deletions."""
        from qdrant_client import models

        def vector(value):
            if hasattr(value, "indices"):
                return models.SparseVector(indices=list(value.indices), values=list(value.values))
            return list(value)

        points = [models.PointStruct(id=p.id, payload=p.payload, vector={name: vector(v) for name, v in p.vector.items()})
                  for p in edge_points]
        for start in range(0, len(points), WRITE_BATCH):
            self.client.upsert(COLLECTION, points=points[start:start + WRITE_BATCH], wait=True)
        if gone:
            self.client.delete(COLLECTION, points_selector=models.PointIdsList(points=gone), wait=True)

    def write_vectors(self, vectors: list[tuple[int, Any]]) -> None:
        from qdrant_client import models

        self.client.update_vectors(COLLECTION, points=[
            models.PointVectors(id=pid, vector={DENSE: np.asarray(v, dtype=np.float32).tolist()}) for pid, v in vectors],
            wait=True)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _optimize(folder: str) -> int:
    """The child process of :meth:`ResourceStore.optimize_in_background`: build the copy's HNSW graph."""
    shard = EdgeShard.load(folder)
    shard.optimize()
    shard.flush()
    shard.close()
    return 0


if __name__ == "__main__":  # python -m app.estate.resource_store optimize FOLDER
    if len(sys.argv) == 3 and sys.argv[1] == "optimize":
        sys.exit(_optimize(sys.argv[2]))
    sys.exit(f"usage: {sys.argv[0]} optimize FOLDER")
