"""Asking an agent server for a plan, and falling back to the local stack when it cannot answer.

The request carries only the prompt, the identified resources and the user context: the protocol
has no field for credentials. A server that is down, slow, answers 5xx or answers something that is
not a valid PlanResponse, or a plan that steps outside what the client identified (app.execution.plan_check), is
treated alike: the local stack answers, and ``served_by`` says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
from pydantic import ValidationError

from agent.protocol import PlanRequest, PlanResponse
from app.config import env_seconds
from app.execution.plan_check import ForeignPlan, check_plan_against_request

log = logging.getLogger("cloudops.remote")
TIMEOUT_S = 10.0  # CLOUDOPS_SERVER_TIMEOUT_S overrides it: past it, the local stack answers


class ServerUnavailable(RuntimeError):
    pass


def plan_remote(request: PlanRequest, server_url: str, timeout: float | None = None) -> PlanResponse:
    url = server_url.rstrip("/") + "/v1/plan"
    timeout = env_seconds("CLOUDOPS_SERVER_TIMEOUT_S", TIMEOUT_S) if timeout is None else timeout
    try:
        reply = httpx.post(url, content=request.model_dump_json(), timeout=timeout,
                           headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        raise ServerUnavailable(f"{server_url} unreachable: {type(exc).__name__}") from None
    if reply.status_code >= 500:
        raise ServerUnavailable(f"{server_url} answered {reply.status_code}")
    if reply.status_code >= 400:  # e.g. a server of another protocol version: the local stack still can
        raise ServerUnavailable(f"{server_url} refused the request ({reply.status_code})")
    try:
        response = PlanResponse.model_validate_json(reply.content)
    except ValidationError:
        raise ServerUnavailable(f"{server_url} answered something that is not a PlanResponse") from None
    if response.served_by != "server":
        raise ServerUnavailable(f"{server_url} answered served_by={response.served_by!r}")
    try:
        check_plan_against_request(request, response)
    except ForeignPlan as exc:
        raise ServerUnavailable(f"{server_url} answered a plan outside the request: {exc}") from None
    return response


def plan_with_fallback(request: PlanRequest, server_url: str | None, local_stack: Callable[[], object]) -> PlanResponse:
    warning = None
    if server_url:
        try:
            return plan_remote(request, server_url)
        except ServerUnavailable as exc:
            warning = f"agent server not used ({exc}); planned locally"
            log.warning(warning)
    response = local_stack().planner("local").plan(request)
    if warning:
        response.warnings.insert(0, warning)
    return response
