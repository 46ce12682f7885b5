"""The CLI's way into a running app: while ``cloudops app`` runs it owns the embedded index, so the
commands that read or write the index (plan, run, search, sync) go through its endpoint instead of
opening the index a second time (Qdrant's embedded mode admits one process per folder).

Discovery is ``$CLOUDOPS_HOME/endpoint.json`` (written 0600 by the app with its URL, token and pid),
then a health check with the token. A stale file (the app died, or another user's process owns the
port) means no app: the CLI opens the index itself. ``CLOUDOPS_NO_APP=1`` skips discovery.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEALTH_TIMEOUT_S = 1.0
PLAN_TIMEOUT_S = 120.0  # the app's first plan loads the embedding model and the playbook index
SYNC_TIMEOUT_S = 3600.0


class EndpointError(RuntimeError):
    """The app answered, but refused: ``status`` is its HTTP status, the message its own words."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # an older file without a pid: let the health check decide
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class AppEndpoint:
    url: str
    token: str

    @classmethod
    def discover(cls, home: Path) -> "AppEndpoint | None":
        """The running app of this ``CLOUDOPS_HOME``, or None."""
        if os.environ.get("CLOUDOPS_NO_APP") == "1":
            return None
        try:
            data = json.loads((home / "endpoint.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not isinstance(data.get("token"), str):
            return None
        if not data["url"].startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:")):
            return None  # the token is only ever sent to loopback
        if not _pid_alive(data.get("pid")):
            return None
        endpoint = cls(data["url"].rstrip("/"), data["token"])
        try:
            health = endpoint.call("GET", "/v1/health", timeout=HEALTH_TIMEOUT_S)
        except (EndpointError, OSError):
            return None
        return endpoint if isinstance(health, dict) and health.get("role") == "local" else None

    def call(self, method: str, path: str, body: Any = None, *, params: dict[str, str] | None = None,
             timeout: float = PLAN_TIMEOUT_S, headers_out: dict[str, str] | None = None) -> Any:
        """One JSON request; connection problems raise OSError, refusals EndpointError. ``headers_out``
        receives the reply's headers."""
        import httpx

        try:
            reply = httpx.request(method, self.url + path, json=body, params=params, timeout=timeout,
                                  headers={"Authorization": f"Bearer {self.token}"})
        except httpx.HTTPError as exc:
            raise OSError(f"the app's endpoint at {self.url} did not answer: {type(exc).__name__}") from None
        if headers_out is not None:
            headers_out.update(reply.headers)
        try:
            data = reply.json()
        except ValueError:
            data = None
        if reply.status_code >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            details = data.get("details") if isinstance(data, dict) else None
            if details:
                message = f"{message}: " + "; ".join(f"{d.get('field')}: {d.get('message')}" for d in details)
            raise EndpointError(reply.status_code, message or f"HTTP {reply.status_code}")
        return data

    # -- the routes the CLI uses ----------------------------------------------------------------
    def plan(self, request_body: dict[str, Any], offline: bool = False, server_url: str | None = None):
        from agent.protocol import PlanResponse

        params = {"offline": "1"} if offline else {}
        if server_url:
            params["server"] = server_url
        return PlanResponse.model_validate(self.call("POST", "/v1/plan", request_body, params=params))

    def search(self, query: str, limit: int, account: str | None, resource_type: str | None) -> list[dict[str, Any]]:
        return self.search_with_notes(query, limit, account, resource_type)[0]

    def search_with_notes(self, query: str, limit: int, account: str | None,
                          resource_type: str | None) -> tuple[list[dict[str, Any]], list[str]]:
        """The hits and the search's notes (the ``X-Search-Notes`` header: a JSON list of sentences)."""
        import json

        headers: dict[str, str] = {}
        rows = self.call("POST", "/v1/search", {"query": query, "limit": limit, "account": account,
                                                "type": resource_type}, headers_out=headers)
        try:
            notes = json.loads(headers.get("x-search-notes", "[]"))
        except ValueError:
            notes = []
        return rows, [str(n) for n in notes] if isinstance(notes, list) else []

    def sync(self, full: bool, account: str | None, region: str | None, service: str | None) -> dict[str, Any]:
        return self.call("POST", "/v1/sync", {"full": full, "account": account, "region": region, "service": service},
                         timeout=SYNC_TIMEOUT_S)

    def approve(self, request_id: str) -> dict[str, Any]:
        return self.call("POST", "/v1/approve", {"request_id": request_id})

    def deny(self, request_id: str, reason: str) -> Any:
        return self.call("POST", "/v1/deny", {"request_id": request_id, "reason": reason})

    def execute(self, request_id: str, approval_id: str | None) -> dict[str, Any]:
        return self.call("POST", "/v1/execute", {"request_id": request_id, "approval_id": approval_id},
                         timeout=SYNC_TIMEOUT_S)
