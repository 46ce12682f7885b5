"""The local endpoint: Starlette on 127.0.0.1, speaking the agent protocol plus the client's own routes
(search, sync, status, approve, execute, audit). It owns the estate index while it runs.

Security, in the order a request meets it: only a loopback Host header (DNS rebinding), no foreign
Origin, then ``Authorization: Bearer <token>`` with a token made new at every launch and written with
the URL to ``$CLOUDOPS_HOME/endpoint.json`` (mode 0600). Plans are kept in memory only until executed,
so an approval always refers to a plan this process produced.

The UI's static files (``/`` and ``/ui/...``, see app.interfaces.webui) are the one exception to the token: the page
must load before it can obtain the token, and they hold no secret. Every answer carries a strict
Content-Security-Policy. The routes the UI adds (autocomplete, explorer, resource, plans, deny, dry run,
settings) are small and typed: query strings and bodies are pydantic models, and a bad one is a 422
naming the field.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agent import __version__
from agent.protocol import PROTOCOL_VERSION, PlanRequest, PlanResponse, validation_details
from agent.server import error, parse_body
from app.config import Schedules
from app.estate.scheduler import SyncBusy, SyncScheduler
from app.execution.service import NotRun, OperationsService, PlanNotFound, UnknownResources
from app.interfaces.ratelimit import RateLimit, TokenBuckets, rate_limit_from_env
from app.interfaces.webui import SECURITY_HEADERS, is_public_path, static_routes_handlers

log = logging.getLogger("cloudops.endpoint")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
STATE_CHANGING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_SECURITY_HEADERS = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()]


class GuardMiddleware:
    """Host, Origin and token checks for every request, before any route runs; then, for state-changing
    methods, ``Content-Type: application/json`` (CSRF: a cross-site HTML form can only send form or
    text/plain bodies and can never add an Authorization header), then the per-token rate limit."""

    def __init__(self, app: ASGIApp, token: str, rate_limit: RateLimit | None = None):
        self.app, self.token = app, token
        self.buckets = TokenBuckets(rate_limit) if rate_limit else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if _hostname(headers.get("host", "")) not in LOOPBACK_HOSTS:
            return await error(403, "only loopback Host headers are served")(scope, receive, send)
        origin = headers.get("origin")
        if origin is not None and not _loopback_origin(origin):
            return await error(403, "foreign Origin refused")(scope, receive, send)
        auth = headers.get("authorization", "")
        send = _with_security_headers(send)
        if is_public_path(scope["path"]):
            return await self.app(scope, receive, send)
        if not hmac.compare_digest(auth, f"Bearer {self.token}"):
            return await error(401, "missing or wrong bearer token")(scope, receive, send)
        if scope["method"] in STATE_CHANGING_METHODS and \
                headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return await error(415, "Content-Type must be application/json", [
                {"field": "Content-Type", "message": "state-changing requests take a JSON body"}])(scope, receive, send)
        if self.buckets is not None:
            wait = self.buckets.take(auth)
            if wait > 0:
                reply = error(429, "too many requests for this token; slow down", [
                    {"field": "Authorization", "message": f"retry after {math.ceil(wait)} s"}])
                reply.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                return await reply(scope, receive, send)
        return await self.app(scope, receive, send)


def _with_security_headers(send: Send) -> Send:
    """``send`` that adds the CSP and friends to every response that does not set them itself."""

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            message = {**message, "headers": [*message.get("headers", []),
                                              *[(k, v) for k, v in _SECURITY_HEADERS if k not in present]]}
        await send(message)

    return wrapped


def _hostname(netloc: str) -> str:
    """The host of ``host[:port]``: '127.0.0.1:8080' -> '127.0.0.1', '[::1]:80' -> '[::1]'."""
    return netloc.split("]")[0] + "]" if netloc.startswith("[") else netloc.split(":")[0]


def _loopback_origin(origin: str) -> bool:
    scheme, _, rest = origin.partition("://")
    return scheme in ("http", "https") and _hostname(rest.split("/")[0]) in LOOPBACK_HOSTS


class SettingsUpdate(BaseModel):
    """What the UI may change in config.yaml. Accounts are not here: they are edited with
    ``cloudops accounts`` (keys go to the keyring, which a web form should not handle)."""

    model_config = ConfigDict(extra="forbid")
    server_url: str | None = Field(default=None, max_length=2048, pattern=r"^(https?://[^\s/?#]+(/[^\s]*)?)?$",
                                   description="The agent server; an empty string removes it.")
    offline: StrictBool | None = None
    schedules: Schedules | None = None


class AutocompleteQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str = Field(max_length=256)
    limit: int = Field(default=8, ge=1, le=50)


class ExplorerQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str | None = Field(default=None, max_length=128)
    region: str | None = Field(default=None, max_length=64)
    service: str | None = Field(default=None, max_length=64)
    type: str | None = Field(default=None, max_length=64)
    state: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=200, ge=1, le=1000)


class ResourceQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=2048)


_REQUEST_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class PlanRef(BaseModel):
    """A body that names one plan of this session (dry run)."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = _REQUEST_ID


class ApproveBody(PlanRef):
    confirm: str | None = Field(default=None, max_length=512, description="The typed name a critical or "
                                "production plan asks for (its confirmation.phrase).")
    stale_ok: StrictBool = Field(default=False, description="Approve although the data may be out of date.")


class ExecuteBody(PlanRef):
    approval_id: str | None = Field(default=None, max_length=128)


class DenyBody(PlanRef):
    reason: str | None = Field(default=None, max_length=500)


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=1000, pattern=r"\S")
    limit: int = Field(default=10, ge=1, le=1000)
    account: str | None = Field(default=None, max_length=128)
    type: str | None = Field(default=None, max_length=64)


class SyncBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full: StrictBool = False
    account: str | None = Field(default=None, max_length=128)
    region: str | None = Field(default=None, max_length=64)
    service: str | None = Field(default=None, max_length=64)


class LocalService:
    """The app's side of the endpoint: the estate (its index, sync, explorer, settings) and the one
    OperationsService (plan, approve, execute, audit) shared by every route."""

    def __init__(self, local_stack_factory, server_url: str | None = None):
        from app.estate.estate import Estate
        from app.home import cloudops_home

        self.estate = Estate()
        self.local_stack_factory = local_stack_factory
        self._stack = None
        self.lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._index = None
        self._config_stamp: int | None = None
        self.current_config()
        self.operations = OperationsService(self.estate, self.stack, cloudops_home(), lookup=self.index,
                                            server_url=server_url, config=self.current_config,
                                            after_run=self._refresh_after_run)
        self.approvals, self.audit = self.operations.approvals, self.operations.audit
        self.scheduler: SyncScheduler | None = None  # the app's own syncs, set by start_endpoint

    def stack(self):
        if self._stack is None:
            self._stack = self.local_stack_factory()
        return self._stack

    def index(self):
        """The lookup over the estate's shard: nothing to load, it sees every write at once."""
        index = self._index
        if index is None:
            index = self._index = self.estate.lookup()
        return index

    def plan(self, request: PlanRequest, offline: bool = False, server_url: str | None = None) -> PlanResponse:
        """Plan with the app's index; resources named in the body are re-read from the index by ARN, and
        accounts and profiles come from config.yaml only (UnknownResources when the index lacks one)."""
        return self.operations.plan(request, request.prompt, offline=offline, server_url=server_url, from_index=True)

    def _refresh_after_run(self, plan: PlanResponse) -> str | None:
        if not self._sync_lock.acquire(blocking=False):
            # A sync is running (a scheduled one may take minutes): the run's answer does not wait for it; the
            # scheduler re-reads the scopes the run touched once that sync has ended.
            if self.scheduler is not None and not self.scheduler.stopped:
                self.scheduler.after_current_sync(lambda: self._refresh_after_run(plan))
                return "a sync was running: the scopes this run touched are read again as soon as it ends"
            self._sync_lock.acquire()
        try:
            note = self.estate.refresh_after_run(plan)
        finally:
            self._sync_lock.release()
        self._index = None
        return note

    def current_config(self):
        """config.yaml as it is now: the tray and the CLI write it too (offline mode, accounts), so it is
        re-read whenever its modification time changes; a broken file keeps the last good config."""
        from app.config import ConfigError, config_path, load_config

        try:
            stamp = config_path().stat().st_mtime_ns
        except OSError:
            stamp = None
        if stamp != self._config_stamp:
            try:
                self.estate.config = load_config()
            except ConfigError:
                pass
            self._config_stamp = stamp
        return self.estate.config

    def sync(self, full: bool = False, account: str | None = None, region: str | None = None,
             service: str | None = None) -> dict:
        """One sync at a time: a second request while one runs is told so (409), not queued."""
        if not self._sync_lock.acquire(blocking=False):
            raise SyncBusy("a sync is already running in the app; try again when it ends")
        try:
            report = self.estate.engine().run(full=full, account=account, region=region, service=service)
        finally:
            self._sync_lock.release()
        self._index = None  # reload on the next search
        return report.as_json()

    # ---- for the sync scheduler (app/estate/scheduler.py) ----------------------------------------------
    def sync_events(self) -> dict:
        """Drain config.yaml's events queue and sync the scopes its events name, one sync at a time like
        ``sync`` (SyncBusy while another runs); an empty queue syncs nothing."""
        from app.estate.events import drain_configured

        if not self._sync_lock.acquire(blocking=False):
            raise SyncBusy("a sync is already running in the app; try again when it ends")
        try:
            refs = drain_configured(self.current_config(), self.estate.sessions)
            if not refs:
                return {"scopes": [], "errors": [], "events": 0}
            report = self.estate.engine().run_events(sorted(refs, key=lambda r: (r.account_id, r.region, r.service)))
        finally:
            self._sync_lock.release()
        self._index = None
        return {**report.as_json(), "events": len(refs)}

    def scope_statuses(self) -> list:
        """The status book's rows (one per account x region x service): when each scope last synced."""
        from app.estate.sync_status import StatusBook

        return StatusBook(self.estate.store.engine).all()
    # ---- end of the sync scheduler's part ------------------------------------------------------------

    def autocomplete(self, prefix: str, limit: int) -> list[dict[str, Any]]:
        """Names for the prompt box, each with where it lives (one name may be in several accounts)."""
        index = self.index()
        out = []
        for low in index.autocomplete(prefix, limit=limit):
            rows = index.rows_named(low)
            if not rows:
                continue
            first = rows[0]
            out.append({"name": index.names[first], "count": len(rows),
                        "resource_type": str(index.types[first]),
                        "places": sorted({f"{index.account_names[r]} {index.regions[r]}" for r in rows})})
        return out

    def settings(self) -> dict[str, Any]:
        from app.config import config_path

        config = self.current_config()
        return {"server_url": config.server_url, "offline": config.offline,
                "schedules": config.schedules.model_dump(), "embed_via_server": config.embed_via_server,
                "accounts": [a.model_dump() for a in config.effective_accounts()],
                "accounts_configured": bool(config.accounts), "config_path": str(config_path()),
                "approval_ttl_s": int(self.operations.approvals.ttl.total_seconds())}

    def update_settings(self, update: SettingsUpdate) -> dict[str, Any]:
        """Read config.yaml afresh (the CLI may have changed accounts), apply the fields sent, write it back."""
        from app.config import Config, load_config, save_config

        with self.lock:
            config = load_config()
            changes: dict[str, Any] = {}
            if "server_url" in update.model_fields_set:
                changes["server_url"] = update.server_url or None
            if "offline" in update.model_fields_set and update.offline is not None:
                changes["offline"] = update.offline
            if "schedules" in update.model_fields_set and update.schedules is not None:
                # the fields sent over the ones config.yaml has (the page does not send events_every_s)
                changes["schedules"] = {**config.schedules.model_dump(), **update.schedules.model_dump(exclude_unset=True)}
            config = Config.model_validate({**config.model_dump(), **{k: v.model_dump() if isinstance(v, BaseModel)
                                                                       else v for k, v in changes.items()}})
            save_config(config)
            self.estate.config = config
            self._config_stamp = None  # re-read (and stamp) on the next use
            if "server_url" in changes:
                self.operations.server_url = config.server_url
        return self.settings()


def production_targets(plan: PlanResponse) -> list[str]:
    """The plan's targets that are production by account name or env tag: what the UI's banner names."""
    from agent.facts import PRODUCTION_VALUES, is_production

    out = [r.display_name + (f" ({r.account_name})" if r.account_name else "") for r in plan.identified_resources
           if _acted_on(r, plan.script.steps) and is_production(r)]
    for step in plan.script.steps:  # a target the lookup did not send still runs in its step's account
        name = (step.account_name or "").lower()
        if any(w in PRODUCTION_VALUES for w in name.replace("_", "-").split("-")) and \
                not any(f"({step.account_name})" in o for o in out):
            out.append(f"account {step.account_name}")
    return out


# -- ui: which identified resources a plan acts on (issue 15) ----------------------------------------
def _acted_on(resource, steps) -> bool:
    """A step names the resource (its id or ARN) in the resource's own account. The same name lives in
    several accounts (orders-db in production and staging) and the lookup sends both: only the step's
    account counts, or a staging plan would be bannered as production."""
    def same_account(step) -> bool:
        if resource.account_id and step.account_id:
            return resource.account_id == step.account_id
        return not (resource.account_name and step.account_name) or resource.account_name == step.account_name

    return any((resource.resource_id in step.targets or (resource.arn and resource.arn in step.targets))
               and same_account(step) for step in steps)
# -- end ui ----------------------------------------------------------------------------------------------


def _query(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    """The query string validated as ``model``, or a 422 naming the field."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        return error(422, f"invalid {model.__name__}", validation_details(exc))


def create_endpoint(service: LocalService, token: str, ui_root: Path | None = None,
                    rate_limit: RateLimit | None | str = "env") -> Starlette:
    """The app; ``rate_limit`` is the per-token limit ("env": from CLOUDOPS_RATE_LIMIT; None: no limit)."""
    if rate_limit == "env":
        rate_limit = rate_limit_from_env()

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__, "protocol": PROTOCOL_VERSION, "role": "local"})

    async def plan(request: Request) -> JSONResponse:
        body = await parse_body(request, PlanRequest)
        if isinstance(body, JSONResponse):
            return body
        # The CLI's --offline and --server reach the app's stack through the query string (the body is the
        # protocol's PlanRequest, which has no place for them).
        offline = request.query_params.get("offline") in ("1", "true")
        server = request.query_params.get("server")
        if server is not None and not server.startswith(("http://", "https://")):
            return error(422, "invalid server", [{"field": "server", "message": "an http(s) URL is required"}])
        try:
            response = await run_in_threadpool(service.plan, body, offline, server)
        except UnknownResources as exc:
            return error(422, "identified_resources names resources the local index does not hold",
                         [{"field": "identified_resources", "message": f"not in the local index: {name}"}
                          for name in exc.names])
        return JSONResponse(response.model_dump(mode="json"))

    async def search(request: Request) -> JSONResponse:
        body = await parse_body(request, SearchBody)
        if isinstance(body, JSONResponse):
            return body

        def work():
            from app.estate.lookup import QueryError, hit_rows

            index = service.index()
            try:
                result = index.search_result(body.query, limit=body.limit, account=body.account or None,
                                             resource_type=body.type or None)
            except QueryError as exc:
                return error(422, str(exc), [{"field": "query", "message": str(exc)}])
            # The notes (no such region synced, semantic results partial) ride in a header: the body
            # stays the list of hits every client reads.
            headers = {"X-Search-Notes": json.dumps(result.notes)} if result.notes else None
            return JSONResponse(hit_rows(result, service.estate.store), headers=headers)

        return await run_in_threadpool(work)

    async def status(request: Request) -> JSONResponse:
        from app.estate.sync_status import StatusBook

        rows = [s.model_dump(mode="json") for s in StatusBook(service.estate.store.engine).all()]
        schedule = service.scheduler.state() if service.scheduler is not None else None  # the app's own syncs
        return JSONResponse({"documents": service.estate.store.count(), "scopes": rows, "schedule": schedule})

    async def sync(request: Request) -> JSONResponse:
        has_body = request.headers.get("content-length") not in (None, "0")
        body = await parse_body(request, SyncBody) if has_body else SyncBody()
        if isinstance(body, JSONResponse):
            return body
        try:
            report = await run_in_threadpool(service.sync, body.full, body.account, body.region, body.service)
        except SyncBusy as exc:
            return error(409, str(exc))
        return JSONResponse(report)

    def _record(request_id: str):
        try:
            return service.operations.record(request_id)
        except PlanNotFound as exc:
            raise HTTPException(404, str(exc)) from None

    async def approve(request: Request) -> JSONResponse:
        body = await parse_body(request, ApproveBody)
        if isinstance(body, JSONResponse):
            return body
        _record(body.request_id)
        try:
            approval = await run_in_threadpool(
                lambda: service.operations.approve(body.request_id, confirm=body.confirm, stale_ok=body.stale_ok,
                                                   via="app"))
        except NotRun as exc:
            return error(409, str(exc))
        return JSONResponse({"approval_id": approval.approval_id, "expires_at": approval.expires_at.isoformat(),
                             "plan_hash": approval.plan_hash})

    async def execute(request: Request) -> JSONResponse:
        body = await parse_body(request, ExecuteBody)
        if isinstance(body, JSONResponse):
            return body
        _record(body.request_id)
        try:
            report = await run_in_threadpool(service.operations.execute, body.request_id, body.approval_id)
        except NotRun as exc:
            return error(409 if "already ran" in str(exc) else 403, str(exc))
        return JSONResponse(report.as_json())

    async def audit(request: Request) -> JSONResponse:
        raw = request.query_params.get("limit", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= 10000:
            return error(422, "invalid audit query", [{"field": "limit", "message": "an integer from 1 to 10000"}])
        return JSONResponse([e.model_dump(mode="json") for e in service.operations.audit.events(int(raw))])

    async def autocomplete(request: Request) -> JSONResponse:
        query = _query(request, AutocompleteQuery)
        if isinstance(query, JSONResponse):
            return query
        if not query.q.strip():
            return JSONResponse({"q": query.q, "suggestions": []})
        suggestions = await run_in_threadpool(service.autocomplete, query.q, query.limit)
        return JSONResponse({"q": query.q, "suggestions": suggestions})

    async def explorer(request: Request) -> JSONResponse:
        from app.estate.explorer import ExplorerFilter, explore

        query = _query(request, ExplorerQuery)
        if isinstance(query, JSONResponse):
            return query
        flt = ExplorerFilter(account=query.account, region=query.region, service=query.service,
                             resource_type=query.type, state=query.state)
        return JSONResponse(await run_in_threadpool(explore, service.estate.store, flt, query.limit))

    async def resource(request: Request) -> JSONResponse:
        query = _query(request, ResourceQuery)
        if isinstance(query, JSONResponse):
            return query
        doc = await run_in_threadpool(service.estate.store.document, query.id)
        if doc is None:
            return error(404, "no such resource in the index")
        return JSONResponse(doc.model_dump(mode="json"))

    async def plan_by_id(request: Request) -> JSONResponse:
        try:
            record = service.operations.record(request.path_params["request_id"])
        except PlanNotFound as exc:
            return error(404, str(exc))
        plan = record.plan
        return JSONResponse({"plan": plan.model_dump(mode="json"), "production": production_targets(plan),
                             "approval_ttl_s": int(service.operations.approvals.ttl.total_seconds()),
                             "status": record.status, "approved_by": record.approved_by,
                             "report": record.report.as_json() if record.report else None})

    async def deny(request: Request) -> JSONResponse:
        body = await parse_body(request, DenyBody)
        if isinstance(body, JSONResponse):
            return body
        _record(body.request_id)
        try:
            await run_in_threadpool(service.operations.deny, body.request_id, body.reason)
        except NotRun as exc:
            return error(409, str(exc))
        return JSONResponse({"denied": True, "request_id": body.request_id})

    async def dry_run(request: Request) -> JSONResponse:
        body = await parse_body(request, PlanRef)
        if isinstance(body, JSONResponse):
            return body
        _record(body.request_id)
        return JSONResponse({"results": await run_in_threadpool(service.operations.dry_run, body.request_id)})

    async def settings(request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse(service.settings())
        body = await parse_body(request, SettingsUpdate)
        if isinstance(body, JSONResponse):
            return body
        return JSONResponse(await run_in_threadpool(service.update_settings, body))

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    async def crash(request: Request, exc: Exception) -> JSONResponse:
        return error(500, "internal error")

    routes = [Route("/v1/health", health), Route("/v1/plan", plan, methods=["POST"]),
              Route("/v1/search", search, methods=["POST"]), Route("/v1/status", status),
              Route("/v1/sync", sync, methods=["POST"]), Route("/v1/approve", approve, methods=["POST"]),
              Route("/v1/execute", execute, methods=["POST"]), Route("/v1/audit", audit),
              Route("/v1/autocomplete", autocomplete), Route("/v1/explorer", explorer),
              Route("/v1/resource", resource), Route("/v1/plans/{request_id}", plan_by_id),
              Route("/v1/deny", deny, methods=["POST"]), Route("/v1/dryrun", dry_run, methods=["POST"]),
              Route("/v1/settings", settings, methods=["GET", "PUT"])]
    index_page, asset = static_routes_handlers(ui_root)
    routes += [Route("/", index_page), Route("/ui/{path:path}", asset)]
    return Starlette(routes=routes, middleware=[Middleware(GuardMiddleware, token=token, rate_limit=rate_limit)],
                     exception_handlers={HTTPException: http_error, Exception: crash})


def write_endpoint_file(home: Path, url: str, token: str) -> Path:
    """``endpoint.json`` with mode 0600 from the first byte (created with O_EXCL semantics via os.open)."""
    path = home / "endpoint.json"
    tmp = home / f".endpoint.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "token": token, "pid": os.getpid()}, handle)
    os.replace(tmp, path)
    return path


def new_token() -> str:
    return secrets.token_urlsafe(32)


def loopback_socket(port: int = 0) -> tuple[socket.socket, str]:
    """The endpoint's listening socket on 127.0.0.1 (never another interface) and its URL.

    TCP_NODELAY is set here because accepted connections inherit it: without it, a keep-alive client
    waits out Nagle + delayed ACK (~40 ms) on every response that leaves in two writes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def endpoint_server(service: LocalService, token: str):
    """The uvicorn server of the endpoint, quiet (no access log: requests carry prompts)."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(create_endpoint(service, token), log_level="warning", access_log=False))


@dataclass
class Endpoint:
    """The local endpoint running in a thread, and what Quit must undo."""

    url: str
    token: str
    path: Path
    service: Any
    server: Any
    thread: threading.Thread

    def wait_started(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.started:
                return True
            if not self.thread.is_alive():
                return False
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        """The sync scheduler (no new sync starts), uvicorn's graceful path (finish requests in flight), then
        the estate, then endpoint.json."""
        scheduler = getattr(self.service, "scheduler", None)  # the sync scheduler's start/stop hook
        if scheduler is not None:
            scheduler.stop()
        self.server.should_exit = True
        self.thread.join(timeout=15)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout=5)
        for closable in (self.service.estate, getattr(self.service, "approvals", None),
                         getattr(self.service, "audit", None)):
            try:
                if closable is not None:
                    closable.close()
            except Exception:
                log.warning("closing %r failed", closable, exc_info=True)
        remove_endpoint_file(self.path, self.token)


def remove_endpoint_file(path: Path, token: str) -> None:
    """Remove endpoint.json only if it is still ours (a later launch may have replaced it)."""
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("token") == token:
            path.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass


def start_endpoint(local_stack_factory: Callable[[], Any], port: int = 0) -> Endpoint:
    """The local endpoint, served by uvicorn in a thread: one start for ``cloudops app --headless`` and the
    desktop app alike, and one ``Endpoint.stop`` that undoes all of it (endpoint.json included)."""
    from app.home import cloudops_home

    sock, url = loopback_socket(port)
    token = new_token()
    service = LocalService(local_stack_factory)
    server = endpoint_server(service, token)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="endpoint", daemon=True)
    thread.start()
    path = write_endpoint_file(cloudops_home(), url, token)
    from app.estate.scheduler import scheduler_for  # the sync scheduler's start/stop hook: Endpoint.stop ends it

    service.scheduler = scheduler_for(service, cloudops_home()).start()
    return Endpoint(url, token, path, service, server, thread)
