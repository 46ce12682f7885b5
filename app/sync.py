"""The sync engine: pull every configured account x region x service in parallel, normalise, embed
only what changed, and make each successfully listed scope hold exactly what AWS holds.

Failure is per scope: a service that answers AccessDenied, keeps throttling past botocore's adaptive
retries, or times out is recorded with its error and keeps its previous documents; every other scope
goes on. Listing runs in a bounded thread pool (I/O-bound); embedding and writing run on the calling
thread as scopes complete, so the model works while the network waits.
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

from app.awsclient import AccountSession
from app.collectors import COLLECTORS, GLOBAL_SERVICES
from app.config import AccountConfig
from app.documents import ResourceDocument
from app.resource_store import ResourceStore
from app.sync_status import ScopeStatus, StatusBook

MAX_WORKERS = 8
EMBED_BATCH = 64


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

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.scopes)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_json(self) -> dict:
        return {
            "added": self.total("added"), "updated": self.total("updated"), "removed": self.total("removed"),
            "unchanged": self.total("unchanged"), "embedded": self.total("embedded"),
            "errors": self.errors, "duration_s": round(self.duration_s, 3),
            "scopes": [s.__dict__ for s in self.scopes],
        }


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description: the AWS error code and message, or the exception type."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}".strip()
    if isinstance(exc, BotoCoreError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


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
                 accounts: list[AccountConfig], *, max_workers: int = MAX_WORKERS):
        self.store = store
        self.embed = embed
        self.status = StatusBook(store.engine)
        self.sessions = [AccountSession(a.name, a.profile, list(a.regions), a.account_id) for a in accounts]
        self.max_workers = max_workers
        self.retries = _RetryCounter()

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
                errors.append({"scope": f"{session.name}/*/*", "account": session.name, "error": describe_error(exc)})
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

    def run_events(self, refs) -> SyncReport:
        """Sync exactly the scopes that resource-change events named (see app.events)."""
        wanted = {(r.account_id, r.region, r.service) for r in refs}
        report = SyncReport()
        started = time.perf_counter()
        scopes, report.errors = self.scopes()
        chosen = [s for s in scopes if (s.account_id, s.region, s.service) in wanted]
        for scope in chosen:
            future: Future = Future()
            try:
                future.set_result(self._collect(scope))
            except Exception as exc:  # noqa: BLE001 - recorded per scope
                future.set_exception(exc)
            result = self._finish(scope, future, False)
            report.scopes.append(result)
            if not result.ok:
                report.errors.append({"scope": result.scope, "error": result.error})
        report.duration_s = time.perf_counter() - started
        return report

    def _collect(self, scope: Scope) -> tuple[list[ResourceDocument], int, float]:
        self.retries.local.counts = [0]
        started = time.perf_counter()
        try:
            docs: list[ResourceDocument] = []
            for collector in COLLECTORS[scope.service]:
                docs.extend(collector(_CountingAccount(scope.account, self.retries), scope.account_id, scope.call_region))
            return docs, self.retries.local.counts[0], time.perf_counter() - started
        except Exception as exc:  # noqa: BLE001 - recorded per scope; never stops the others
            exc.cloudops_retries = self.retries.local.counts[0]  # type: ignore[attr-defined]
            raise
        finally:
            self.retries.local.counts = None

    def run(self, *, account: str | None = None, region: str | None = None, service: str | None = None,
            full: bool = False, progress: Callable[[ScopeResult], None] | None = None) -> SyncReport:
        started = time.perf_counter()
        report = SyncReport()
        scopes, report.errors = self.scopes(account, region, service)
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="sync") as pool:
            pending: dict[Future, Scope] = {pool.submit(self._collect, s): s for s in scopes}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    scope = pending.pop(future)
                    result = self._finish(scope, future, full)
                    report.scopes.append(result)
                    if not result.ok:
                        report.errors.append({"scope": result.scope, "account": result.account_name,
                                              "region": result.region, "service": result.service,
                                              "error": result.error})
                    if progress:
                        progress(result)
        report.scopes.sort(key=lambda r: r.scope)
        report.duration_s = time.perf_counter() - started
        return report

    def _finish(self, scope: Scope, future: Future, full: bool) -> ScopeResult:
        now = datetime.now(timezone.utc)
        result = ScopeResult(scope.key, scope.account_id, scope.account.name, scope.region, scope.service, ok=True)
        try:
            docs, result.retries, result.duration_s = future.result()
        except Exception as exc:  # noqa: BLE001
            result.ok = False
            result.error = describe_error(exc)
            result.retries = getattr(exc, "cloudops_retries", 0)
            previous = self.status.get(scope.key)
            self.status.record(ScopeStatus(
                scope=scope.key, account_id=scope.account_id, account_name=scope.account.name, region=scope.region,
                service=scope.service, last_attempt=now, last_error=result.error, last_error_at=now,
                retries=result.retries, count=previous.count if previous else 0))
            return result
        to_embed, vectors = self.store.changes(scope.key, docs)
        for start in range(0, len(to_embed), EMBED_BATCH):
            batch = to_embed[start:start + EMBED_BATCH]
            for doc, vector in zip(batch, self.embed([d.text for d in batch])):
                vectors[doc.id] = vector
        result.embedded = len(to_embed)
        change = self.store.apply_scope(scope.key, docs, vectors, repair=full)
        result.added, result.updated, result.removed, result.unchanged = (
            change.added, change.updated, change.removed, change.unchanged)
        result.count = len(docs)
        self.status.record(ScopeStatus(
            scope=scope.key, account_id=scope.account_id, account_name=scope.account.name, region=scope.region,
            service=scope.service, last_attempt=now, last_success=now, last_error=None, retries=result.retries,
            added=result.added, updated=result.updated, removed=result.removed, unchanged=result.unchanged,
            count=result.count, duration_s=round(result.duration_s, 3)))
        return result


class _CountingAccount:
    """Wraps an AccountSession so that every client it hands out reports its retries."""

    def __init__(self, account: AccountSession, counter: _RetryCounter):
        self._account = account
        self._counter = counter
        self.name = account.name
        self.regions = account.regions

    def client(self, service: str, region: str):
        client = self._account.client(service, region)
        self._counter.attach(client)
        return client

    def __getattr__(self, item):
        return getattr(self._account, item)
