"""The sync engine: pull every configured account x region x service in parallel, normalise, and make
each successfully listed scope hold exactly what AWS holds; then embed only what changed.

Progressive: a scope's listing is written (payload, words, names) the moment it is read, so its resources
are found by name, tags and words at once, and its status says it synced. Meaning vectors follow, once
every listing is written, in large batches (the embedder runs one thread per core), each batch written
as soon as it is made; until then a search says its semantic results are partial. Embedding waits for
the listing because both are CPU work on the same cores: embedding while listing, even at the lowest
thread priority, made the estate searchable later (1.36x vs 1.13x the listing pass, same-run A/B at 2k
resources) and finished no sooner (5.9x vs 5.6x), so it was not kept. Only documents whose short dense text changed are embedded
(an unchanged re-sync embeds none), and points a killed sync left without a vector are embedded by the
next one.

Failure is per scope: a service that answers AccessDenied, keeps throttling past botocore's adaptive
retries, or times out is recorded with its error and keeps its previous documents; every other scope
goes on. Listing runs in a bounded thread pool (I/O-bound); writing runs on one writer thread, so
writes stay ordered and the store has one writer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from app.awsclient import AccountSession, SessionPool, describe_error
from app.estate.collectors import COLLECTORS, GLOBAL_SERVICES
from app.config import AccountConfig
from app.estate.documents import ResourceDocument, dense_text
from app.estate.permissions import CallerPolicies, read_caller_policies
from app.estate.resource_store import ResourceStore
from app.estate.sync_status import ScopeStatus, StatusBook
from app.estate.tagbook import TagBooks

MAX_WORKERS = 8
EMBED_BATCH = 1024  # texts per embedding call: each batch's vectors are written as soon as it is made


@dataclass(frozen=True)
class Scope:
    account: AccountSession
    account_id: str
    region: str  # "global" for S3 and IAM
    service: str

    @property
    def key(self) -> str:
        return f"{self.account_id}/{self.region}/{self.service}"

    @property
    def call_region(self) -> str:
        return self.account.regions[0] if self.region == "global" else self.region


@dataclass
class ScopeResult:
    scope: str
    account_id: str
    account_name: str
    region: str
    service: str
    ok: bool
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    embedded: int = 0
    count: int = 0
    retries: int = 0
    duration_s: float = 0.0
    error: str | None = None


@dataclass
class SyncReport:
    scopes: list[ScopeResult] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    duration_s: float = 0.0
    searchable_s: float = 0.0  # when every listed scope was written: found by name, tags and words
    embedded: int = 0  # meaning vectors made and written by this run
    semantic_pending: int = 0  # resources still without one when the run returned

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.scopes)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_json(self) -> dict:
        return {
            "added": self.total("added"), "updated": self.total("updated"), "removed": self.total("removed"),
            "unchanged": self.total("unchanged"), "embedded": self.embedded,
            "errors": self.errors, "duration_s": round(self.duration_s, 3),
            "searchable_s": round(self.searchable_s, 3), "semantic_pending": self.semantic_pending,
            "scopes": [s.__dict__ for s in self.scopes],
        }




class _RetryCounter:
    """Counts botocore's retries per scope from each response's RetryAttempts (thread-local scope)."""

    def __init__(self):
        self.local = threading.local()

    def __call__(self, parsed=None, **_):
        counts = getattr(self.local, "counts", None)
        if counts is not None and isinstance(parsed, dict):
            counts[0] += int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0)

    def attach(self, client) -> None:
        if not getattr(client, "_cloudops_retry_counter", False):
            client.meta.events.register("after-call", self)
            client._cloudops_retry_counter = True


class SyncEngine:
    def __init__(self, store: ResourceStore, embed: Callable[[list[str]], np.ndarray],
                 accounts: list[AccountConfig], *, max_workers: int = MAX_WORKERS, pool: SessionPool | None = None):
        """``pool``: sessions kept by a long-lived owner (the app's Estate) so that runs after the first
        reuse their boto3 clients; without one, this engine makes its own."""
        self.store = store
        self.embed = embed
        self.status = StatusBook(store.engine)
        pool = pool or SessionPool()
        self.sessions = [pool.get(a.name, a.profile, list(a.regions), a.account_id) for a in accounts]
        self.max_workers = max_workers
        self.retries = _RetryCounter()
        self._policy_cache: dict[str, CallerPolicies] = {}
        self._account_lock = threading.Lock()  # guards both per-account caches (policies, tag books)
        self._tag_books: dict[str, TagBooks] = {}  # per account, made afresh by each run

    def _books(self, account: AccountSession) -> TagBooks:
        with self._account_lock:
            if account.name not in self._tag_books:
                counted = _CountingAccount(account, self.retries)
                self._tag_books[account.name] = TagBooks(lambda region: counted.client("resourcegroupstaggingapi", region))
            return self._tag_books[account.name]

    def _policies(self, account: AccountSession) -> CallerPolicies:
        """The caller's IAM statements for ``account``, read once per engine (one run)."""
        with self._account_lock:
            if account.name not in self._policy_cache:
                self._policy_cache[account.name] = read_caller_policies(account, account.regions[0])
            return self._policy_cache[account.name]

    def scopes(self, account: str | None = None, region: str | None = None,
               service: str | None = None) -> tuple[list[Scope], list[dict]]:
        """The scopes to sync, and errors for accounts whose identity could not be resolved."""
        scopes, errors = [], []
        for session in self.sessions:
            if account and account not in (session.name, session.account_id):
                continue
            try:
                account_id = session.resolve_account_id()
            except (ClientError, BotoCoreError) as exc:
                error = describe_error(exc)
                errors.append({"scope": f"{session.name}/*/*", "account": session.name, "error": error})
                self._account_failed(session.name, error)
                continue
            for svc in COLLECTORS:
                if service and svc != service:
                    continue
                regions = ["global"] if svc in GLOBAL_SERVICES else session.regions
                for reg in regions:
                    if region and reg != region and not (reg == "global" and region in session.regions):
                        continue
                    scopes.append(Scope(session, account_id, reg, svc))
        return scopes, errors

    def _account_failed(self, account_name: str, error: str) -> None:
        """The account could not be reached at all (its profile, its login, its role): every scope of it synced
        before gets this failure, so that its data's age says the last sync failed instead of looking fresh."""
        now = datetime.now(timezone.utc)
        for status in self.status.all():
            if status.account_name == account_name:
                self.status.record(ScopeStatus(scope=status.scope, last_attempt=now, last_error=error,
                                               last_error_at=now))

    def run_events(self, refs) -> SyncReport:
        """Sync exactly the scopes that resource-change events named (see app.estate.events). An event says
        something changed there, so every detail is read again, as in a full sync of that scope."""
        wanted = {(r.account_id, r.region, r.service) for r in refs}
        scopes, errors = self.scopes()
        return self._run([s for s in scopes if (s.account_id, s.region, s.service) in wanted], errors,
                         reread=True, repair=False)

    def _collect(self, scope: Scope, known: dict[str, ResourceDocument] | None = None
                 ) -> tuple[list[ResourceDocument], int, float]:
        self.retries.local.counts = [0]
        started = time.perf_counter()
        try:
            docs: list[ResourceDocument] = []
            for collector in COLLECTORS[scope.service]:
                docs.extend(collector(_CountingAccount(scope.account, self.retries, self._books(scope.account)),
                                      scope.account_id, scope.call_region, known=known))
            policies = self._policies(scope.account)
            for doc in docs:
                permissions = policies.evaluate(doc.resource_type, doc.arn)
                if permissions != doc.permissions:
                    doc.permissions = permissions
                    doc.finalise()
            return docs, self.retries.local.counts[0], time.perf_counter() - started
        except Exception as exc:  # noqa: BLE001 - recorded per scope; never stops the others
            exc.cloudops_retries = self.retries.local.counts[0]  # type: ignore[attr-defined]
            raise
        finally:
            self.retries.local.counts = None

    def run(self, *, account: str | None = None, region: str | None = None, service: str | None = None,
            full: bool = False, progress: Callable[[ScopeResult], None] | None = None) -> SyncReport:
        scopes, errors = self.scopes(account, region, service)
        return self._run(scopes, errors, reread=full, repair=full, progress=progress)

    def _run(self, scopes: list[Scope], errors: list[dict], *, reread: bool, repair: bool,
             progress: Callable[[ScopeResult], None] | None = None) -> SyncReport:
        """``reread``: make every detail call (no reuse of known documents); ``repair``: rewrite
        unchanged documents too."""
        started = time.perf_counter()
        report = SyncReport(errors=list(errors))
        self._tag_books = {}  # tags are read fresh by every run
        backlog: list[ResourceDocument] = []  # documents whose meaning vector this run makes

        def done_with(result: ScopeResult) -> None:
            report.scopes.append(result)
            if not result.ok:
                report.errors.append({"scope": result.scope, "account": result.account_name, "region": result.region,
                                      "service": result.service, "error": result.error})
            if progress:
                progress(result)

        # Listing (a thread pool, I/O-bound) and writing (one writer thread, so writes stay ordered and
        # the shard has one writer) overlap: each scope is searchable as soon as it is written.
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="sync") as pool, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-writer") as writer:
            # Incremental (the default): collectors reuse what they already know and make detail calls
            # only for new resources. Full: every detail is read again.
            pending: dict[Future, Scope] = {
                pool.submit(self._collect, s, None if reread else self.store.known(s.key)): s for s in scopes}
            writes: list[Future] = []
            while pending or writes:
                done, _ = wait([*pending, *writes], return_when=FIRST_COMPLETED)
                for future in done:
                    if future in pending:
                        listed = self._listed(pending.pop(future), future)
                        if isinstance(listed, ScopeResult):
                            done_with(listed)
                        else:
                            writes.append(writer.submit(self._store, listed, repair))
                    else:
                        writes.remove(future)
                        result, to_embed = future.result()
                        backlog.extend(to_embed)
                        done_with(result)
        report.searchable_s = time.perf_counter() - started
        report.embedded = self._embed_backlog(backlog)
        report.semantic_pending = self.store.semantic_pending()
        if self.store.mirror_error:
            report.errors.append({"scope": "team", "error": self.store.mirror_error})
        report.scopes.sort(key=lambda r: r.scope)
        report.duration_s = time.perf_counter() - started
        return report

    def _listed(self, scope: Scope, future: Future) -> "_Listed | ScopeResult":
        """A listed scope ready to store, or the failure result of a scope whose listing failed."""
        now = datetime.now(timezone.utc)
        try:
            docs, retries, duration = future.result()
        except Exception as exc:  # noqa: BLE001 - recorded per scope
            result = ScopeResult(scope.key, scope.account_id, scope.account.name, scope.region, scope.service, ok=False,
                                 error=describe_error(exc), retries=getattr(exc, "cloudops_retries", 0))
            previous = self.status.get(scope.key)
            self.status.record(ScopeStatus(
                scope=scope.key, account_id=scope.account_id, account_name=scope.account.name, region=scope.region,
                service=scope.service, last_attempt=now, last_error=result.error, last_error_at=now,
                retries=result.retries, count=previous.count if previous else 0))
            return result
        return _Listed(scope, docs, retries, duration)

    def _embed_backlog(self, backlog: list[ResourceDocument]) -> int:
        """Make and write the meaning vectors of ``backlog`` and of any point an earlier, interrupted sync
        left without one; a batch at a time, each written as soon as it is made. Returns how many."""
        queued = {doc.id for doc in backlog}
        if self.store.semantic_pending() > len(queued):
            backlog = backlog + [d for d in self.store.pending_documents() if d.id not in queued]
        written = 0
        # Sorted by text length so that a batch pads little (the embedder also sorts within a call).
        backlog = sorted(backlog, key=lambda d: len(dense_text(d)))
        for start in range(0, len(backlog), EMBED_BATCH):
            batch = backlog[start:start + EMBED_BATCH]
            vectors = self.embed([dense_text(d) for d in batch])
            written += self.store.write_vectors(batch, vectors)
        if written:
            self.store.optimize_in_background()
        return written

    def _store(self, item: "_Listed", repair: bool) -> tuple[ScopeResult, list[ResourceDocument]]:
        scope = item.scope
        now = datetime.now(timezone.utc)
        written = self.store.write_listing(scope.key, item.docs, repair=repair)
        change = written.change
        result = ScopeResult(scope.key, scope.account_id, scope.account.name, scope.region, scope.service, ok=True,
                             added=change.added, updated=change.updated, removed=change.removed,
                             unchanged=change.unchanged, embedded=len(written.to_embed), count=len(item.docs),
                             retries=item.retries, duration_s=item.duration)
        self.status.record(ScopeStatus(
            scope=scope.key, account_id=scope.account_id, account_name=scope.account.name, region=scope.region,
            service=scope.service, last_attempt=now, last_success=now, last_error=None, retries=result.retries,
            added=result.added, updated=result.updated, removed=result.removed, unchanged=result.unchanged,
            count=result.count, duration_s=round(result.duration_s, 3)))
        return result, written.to_embed


@dataclass
class _Listed:
    scope: Scope
    docs: list[ResourceDocument]
    retries: int
    duration: float


class _CountingAccount:
    """An AccountSession as one sync run sees it: every client it hands out reports its retries, and
    it carries the run's tag books of the account."""

    def __init__(self, account: AccountSession, counter: _RetryCounter, tag_books: TagBooks | None = None):
        self._account = account
        self._counter = counter
        self.tag_books = tag_books  # the run's tag books of this account (app.estate.tagbook)
        self.name = account.name
        self.regions = account.regions

    def client(self, service: str, region: str):
        client = self._account.client(service, region)
        self._counter.attach(client)
        return client

    def __getattr__(self, item):
        return getattr(self._account, item)
