"""The local endpoint: Starlette on 127.0.0.1, speaking the agent protocol plus the client's own routes
(search, sync, status, approve, execute, audit). It owns the estate index while it runs.

Security, in the order a request meets it: only a loopback Host header (DNS rebinding), no foreign
Origin, then ``Authorization: Bearer <token>`` with a token made new at every launch and written with
the URL to ``$CLOUDOPS_HOME/endpoint.json`` (mode 0600). Plans are kept in memory only until executed,
so an approval always refers to a plan this process produced.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agent import __version__
from agent.protocol import PROTOCOL_VERSION, PlanRequest, PlanResponse
from agent.server import error, parse_body, read_json

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
MAX_PLANS = 256


class GuardMiddleware:
    """Host, Origin and token checks for every request, before any route runs."""

    def __init__(self, app: ASGIApp, token: str):
        self.app, self.token = app, token

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
        if scope["path"] != "/" and not hmac.compare_digest(auth, f"Bearer {self.token}"):
            return await error(401, "missing or wrong bearer token")(scope, receive, send)
        return await self.app(scope, receive, send)


def _hostname(netloc: str) -> str:
    """The host of ``host[:port]``: '127.0.0.1:8080' -> '127.0.0.1', '[::1]:80' -> '[::1]'."""
    return netloc.split("]")[0] + "]" if netloc.startswith("[") else netloc.split(":")[0]


def _loopback_origin(origin: str) -> bool:
    scheme, _, rest = origin.partition("://")
    return scheme in ("http", "https") and _hostname(rest.split("/")[0]) in LOOPBACK_HOSTS


class LocalService:
    """The estate, the local agent stack, approvals, executor and audit, shared by the routes."""

    def __init__(self, local_stack_factory, server_url: str | None = None):
        from app.approvals import ApprovalBook
        from app.audit import AuditTrail
        from app.estate import Estate
        from app.executor import Executor
        from app.home import cloudops_home

        self.estate = Estate()
        self.server_url = server_url or self.estate.config.server_url
        self.local_stack_factory = local_stack_factory
        self._stack = None
        self.approvals = ApprovalBook(cloudops_home() / "state.db")
        self.audit = AuditTrail(cloudops_home() / "audit.db")
        self.executor = Executor(self.approvals, self.audit)
        self.plans: OrderedDict[str, PlanResponse] = OrderedDict()
        self.lock = threading.Lock()
        self._index = None

    def stack(self):
        if self._stack is None:
            self._stack = self.local_stack_factory()
        return self._stack

    def index(self):
        if self._index is None:
            self._index = self.estate.lookup()
        return self._index

    def plan(self, request: PlanRequest) -> PlanResponse:
        from app.context import build_request
        from app.remote import plan_with_fallback

        if not request.identified_resources:
            looked_up = build_request(request.prompt, self.index(), self.estate.store, self.estate.config)
            request = request.model_copy(update={"identified_resources": looked_up.identified_resources,
                                                 "user_context": request.user_context if request.user_context.aws_accounts
                                                 else looked_up.user_context})
        response = plan_with_fallback(request, self.server_url, self.stack)
        self.audit.record("plan", request_id=response.request_id, prompt=request.prompt, plan_hash=response.plan_hash,
                          detail=response.classification.playbook)
        with self.lock:
            self.plans[response.request_id] = response
            while len(self.plans) > MAX_PLANS:
                self.plans.popitem(last=False)
        return response

    def sync(self, full: bool = False) -> dict:
        report = self.estate.engine().run(full=full)
        self._index = None  # reload on the next search
        return report.as_json()


def create_endpoint(service: LocalService, token: str) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__, "protocol": PROTOCOL_VERSION, "role": "local"})

    async def plan(request: Request) -> JSONResponse:
        body = await parse_body(request, PlanRequest)
        if isinstance(body, JSONResponse):
            return body
        return JSONResponse((await run_in_threadpool(service.plan, body)).model_dump(mode="json"))

    async def search(request: Request) -> JSONResponse:
        data = await read_json(request)
        if not isinstance(data, dict) or not isinstance(data.get("query"), str) or not data["query"].strip():
            return error(422, "invalid search", [{"field": "query", "message": "a non-empty string is required"}])
        limit = data.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            return error(422, "invalid search", [{"field": "limit", "message": "an integer from 1 to 1000"}])

        def work():
            from app.lookup import QueryError

            index = service.index()
            try:
                hits = index.search(data["query"], limit=limit)
            except QueryError as exc:
                return error(422, str(exc), [{"field": "query", "message": str(exc)}])
            docs = service.estate.store.documents([h.id for h in hits])
            return JSONResponse([{**docs[h.id].model_dump(exclude={"text", "content_hash"}), "score": h.score,
                                  "why": h.why} for h in hits if h.id in docs])

        return await run_in_threadpool(work)

    async def status(request: Request) -> JSONResponse:
        from app.sync_status import StatusBook

        rows = [s.model_dump(mode="json") for s in StatusBook(service.estate.store.engine).all()]
        return JSONResponse({"documents": service.estate.store.count(), "scopes": rows})

    async def sync(request: Request) -> JSONResponse:
        data = await read_json(request) if request.headers.get("content-length") not in (None, "0") else {}
        return JSONResponse(await run_in_threadpool(service.sync, bool((data or {}).get("full"))))

    def _plan_from(data) -> PlanResponse:
        if not isinstance(data, dict) or not isinstance(data.get("request_id"), str):
            raise HTTPException(422, "request_id is required")
        plan = service.plans.get(data["request_id"])
        if plan is None:
            raise HTTPException(404, "no such plan in this session")
        return plan

    async def approve(request: Request) -> JSONResponse:
        from app.approvals import ApprovalError

        plan = _plan_from(await read_json(request))
        try:
            approval = service.approvals.approve(plan)
        except ApprovalError as exc:
            service.audit.record("denial", request_id=plan.request_id, plan_hash=plan.plan_hash, detail=str(exc))
            return error(409, str(exc))
        service.audit.record("approval", request_id=plan.request_id, plan_hash=plan.plan_hash)
        return JSONResponse({"approval_id": approval.approval_id, "expires_at": approval.expires_at.isoformat(),
                             "plan_hash": approval.plan_hash})

    async def execute(request: Request) -> JSONResponse:
        from app.approvals import ApprovalError

        data = await read_json(request)
        plan = _plan_from(data)
        try:
            report = await run_in_threadpool(service.executor.run, plan, data.get("approval_id"))
        except ApprovalError as exc:
            return error(403, str(exc))
        return JSONResponse({"ok": report.ok, "state_left": report.state_left, "steps": [s.__dict__ for s in report.steps]})

    async def audit(request: Request) -> JSONResponse:
        limit = int(request.query_params.get("limit", "50")) if request.query_params.get("limit", "50").isdigit() else 50
        return JSONResponse([e.model_dump(mode="json") for e in service.audit.events(min(limit, 10000))])

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    async def crash(request: Request, exc: Exception) -> JSONResponse:
        return error(500, "internal error")

    routes = [Route("/v1/health", health), Route("/v1/plan", plan, methods=["POST"]),
              Route("/v1/search", search, methods=["POST"]), Route("/v1/status", status),
              Route("/v1/sync", sync, methods=["POST"]), Route("/v1/approve", approve, methods=["POST"]),
              Route("/v1/execute", execute, methods=["POST"]), Route("/v1/audit", audit)]
    return Starlette(routes=routes, middleware=[Middleware(GuardMiddleware, token=token)],
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
