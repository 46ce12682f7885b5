"""Asking an agent server for a plan.

The request carries only the prompt, the identified resources and the user context: the protocol
has no field for credentials. A server that is down, slow, answers 5xx or 4xx or something that is not
a valid PlanResponse raises ServerUnavailable; the service (app.execution.service) then plans with the
local stack and says so. A well-formed answer is still only a claim: the service checks it
(app.execution.verify) before anyone sees it.
"""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from agent.protocol import PlanRequest, PlanResponse
from app.config import env_seconds

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
    return response
