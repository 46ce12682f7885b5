"""The stateless agent server: Starlette routes over one AgentStack.

It holds no AWS credentials and stores nothing of a request: a plan is computed from the request
alone. Errors are JSON (``ErrorResponse``) with the offending field named; never a traceback.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agent import __version__
from agent.planner import AgentStack, ServedBy
from agent.protocol import (
    PROTOCOL_VERSION, EmbedRequest, EmbedResponse, ErrorDetail, ErrorResponse, PlanRequest, validation_details,
)

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 64  # no request of the protocol nests deeper than ~8; a deeper one is an attack on the parser
log = logging.getLogger("cloudops.server")


def error(status: int, message: str, details: list[ErrorDetail] | None = None) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=message, details=details or []).model_dump(), status_code=status)


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The body as JSON, refusing oversized bodies before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise HTTPException(413, f"body larger than {limit} bytes")
        except ValueError:
            raise HTTPException(400, "invalid Content-Length") from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"body is not JSON: {exc}") from None
    except RecursionError:
        raise HTTPException(400, f"body nests deeper than {MAX_JSON_DEPTH} levels") from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise HTTPException(400, f"body nests deeper than {MAX_JSON_DEPTH} levels")
    return data


def json_depth(data: Any) -> int:
    """How deeply ``data`` nests (a scalar is 0), counted without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


class StackHolder:
    """Builds the stack once (at startup, ~8 s with the model) and serialises planning calls."""

    def __init__(self, factory: Callable[[], AgentStack]):
        self.factory = factory
        self.stack: AgentStack | None = None
        self.lock = threading.Lock()

    def get(self) -> AgentStack:
        with self.lock:
            if self.stack is None:
                self.stack = self.factory()
            return self.stack


async def parse_body(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    """The body validated as ``model``, or the 4xx answer that names what is wrong."""
    data = await read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return error(422, f"invalid {model.__name__}", validation_details(exc))


def plan_routes(holder: StackHolder, served_by: ServedBy) -> list[Route]:
    async def plan(request: Request) -> JSONResponse:
        plan_request = await parse_body(request, PlanRequest)
        if isinstance(plan_request, JSONResponse):
            return plan_request

        def work():
            stack = holder.get()
            with holder.lock:
                return stack.planner(served_by).plan(plan_request)

        response = await run_in_threadpool(work)
        return JSONResponse(response.model_dump(mode="json"))

    async def playbooks(request: Request) -> JSONResponse:
        stack = await run_in_threadpool(holder.get)
        records = {r.id: r for r in stack.index.records()}
        items = []
        for pid, pb in sorted(stack.playbooks.items()):
            record = records.get(pid)
            items.append({"id": pid, "title": pb.title, "service": pb.service, "intent": pb.intent,
                          "operation": pb.main_operation, "resource_types": pb.resource_types,
                          "read_only": pb.read_only, "version": pb.version,
                          "content_hash": record.content_hash if record else None,
                          "git_commit": record.git_commit if record else None})
        return JSONResponse({"playbooks": items, "operations": len(stack.catalogue),
                             "operations_route": "/v1/operations"})

    async def operations(request: Request) -> JSONResponse:
        """The operation catalogue: every API call of the estate's services the planner can make, with its
        access level, whether it needs approval, and the reviewed playbooks that make it (``?service=rds``
        narrows)."""
        stack = await run_in_threadpool(holder.get)
        service = request.query_params.get("service")
        items = [e.row(stack.router.covering.get(e.id, [])) for e in stack.catalogue
                 if service is None or e.service == service]
        if service is not None and not items:
            return error(404, f"no operations for service {service!r}; the catalogue covers "
                         + ", ".join(sorted({e.service for e in stack.catalogue})))
        return JSONResponse({"fingerprint": stack.catalogue_stats.fingerprint, "count": len(items), "operations": items})

    async def embed(request: Request) -> JSONResponse:
        body = await parse_body(request, EmbedRequest)
        if isinstance(body, JSONResponse):
            return body
        stack = await run_in_threadpool(holder.get)
        vectors = await run_in_threadpool(stack.index.embedder.encode, body.texts)
        return JSONResponse(EmbedResponse(model=stack.index.embedder.name, dimension=int(vectors.shape[1]),
                                          vectors=vectors.round(6).tolist()).model_dump())

    return [Route("/v1/plan", plan, methods=["POST"]), Route("/v1/playbooks", playbooks, methods=["GET"]),
            Route("/v1/operations", operations, methods=["GET"]), Route("/v1/embed", embed, methods=["POST"])]



def create_app(factory: Callable[[], AgentStack], *, eager: bool = True) -> Starlette:
    holder = StackHolder(factory)

    async def health(request: Request) -> JSONResponse:
        ready = holder.stack is not None
        return JSONResponse({"status": "ok" if ready else "starting", "version": __version__,
                             "protocol": PROTOCOL_VERSION, "role": "server",
                             "playbooks": len(holder.stack.playbooks) if ready else 0})

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return error(500, "internal error")

    @asynccontextmanager
    async def lifespan(app: Starlette):
        if eager:
            await run_in_threadpool(holder.get)
        yield

    app = Starlette(routes=[Route("/v1/health", health, methods=["GET"]), *plan_routes(holder, "server")],
                    exception_handlers={HTTPException: http_error, Exception: crash}, lifespan=lifespan)
    app.state.holder = holder
    return app
