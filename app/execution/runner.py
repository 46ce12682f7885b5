"""Plan → approve/deny → execute, for the CLI, in one of two places: in this process (the CLI opens the
index, the approval book and the audit trail itself) or in the running app (through its endpoint,
because the app owns the index while it runs). Both go through one OperationsService
(app.execution.service): the local runner holds one, the app's endpoint holds the other. ``cloudops plan``
and ``cloudops run`` do not need to know which: both runners take and give the same things, and refusals
arrive as ``NotRun``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from agent.protocol import PlanRequest, PlanResponse
from app.execution.report import ExecutionReport
from app.execution.service import NotRun

__all__ = ["AppRunner", "LocalRunner", "NotRun", "Runner", "open_runner"]


class Runner(Protocol):
    where: str

    def plan(self, request: PlanRequest | None, prompt: str, offline: bool, server_url: str | None) -> PlanResponse: ...
    def dry_run(self, plan: PlanResponse) -> dict[str, str]: ...
    def approve(self, plan: PlanResponse, confirm: str | None = None, stale_ok: bool = False) -> str: ...
    def deny(self, plan: PlanResponse, reason: str) -> None: ...
    def execute(self, plan: PlanResponse, approval_id: str | None) -> ExecutionReport: ...
    def close(self) -> None: ...


class LocalRunner:
    """Everything in this process: the local index, the agent server or the local stack, approvals in
    ``state.db``, the audit trail in ``audit.db``, boto3 for the steps."""

    where = "this process"

    def __init__(self, local_stack: Callable[[], Any]):
        from app.estate.estate import Estate
        from app.execution.service import OperationsService
        from app.home import cloudops_home

        self.estate = Estate()
        self.service = OperationsService(self.estate, local_stack, cloudops_home())

    def plan(self, request: PlanRequest | None, prompt: str, offline: bool, server_url: str | None) -> PlanResponse:
        return self.service.plan(request, prompt, offline=offline, server_url=server_url)

    def dry_run(self, plan: PlanResponse) -> dict[str, str]:
        return self.service.dry_run(plan.request_id)

    def approve(self, plan: PlanResponse, confirm: str | None = None, stale_ok: bool = False) -> str:
        return self.service.approve(plan.request_id, confirm=confirm, stale_ok=stale_ok, via="cli").approval_id

    def deny(self, plan: PlanResponse, reason: str) -> None:
        self.service.deny(plan.request_id, reason)

    def execute(self, plan: PlanResponse, approval_id: str | None) -> ExecutionReport:
        return self.service.execute(plan.request_id, approval_id)

    def close(self) -> None:
        self.service.close()
        self.estate.close()


class AppRunner:
    """The same through the running app's endpoint: its index, its approvals, its audit trail."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.where = f"the running app ({endpoint.url})"

    def plan(self, request: PlanRequest | None, prompt: str, offline: bool, server_url: str | None) -> PlanResponse:
        body = request.model_dump(mode="json") if request is not None else {"prompt": prompt}
        return self.endpoint.plan(body, offline=offline, server_url=server_url)

    def _refusable(self, call, *args):
        from app.interfaces.endpoint_client import EndpointError

        try:
            return call(*args)
        except EndpointError as exc:
            raise NotRun(str(exc)) from None

    def dry_run(self, plan: PlanResponse) -> dict[str, str]:
        return self._refusable(self.endpoint.call, "POST", "/v1/dryrun", {"request_id": plan.request_id})["results"]

    def approve(self, plan: PlanResponse, confirm: str | None = None, stale_ok: bool = False) -> str:
        body = {"request_id": plan.request_id, "stale_ok": stale_ok}
        if confirm is not None:
            body["confirm"] = confirm
        return self._refusable(self.endpoint.call, "POST", "/v1/approve", body)["approval_id"]

    def deny(self, plan: PlanResponse, reason: str) -> None:
        self._refusable(self.endpoint.deny, plan.request_id, reason)

    def execute(self, plan: PlanResponse, approval_id: str | None) -> ExecutionReport:
        return ExecutionReport.model_validate(self._refusable(self.endpoint.execute, plan.request_id, approval_id))

    def close(self) -> None:
        pass


def open_runner(local_stack: Callable[[], Any]) -> Runner:
    """The running app's runner when one answers for this ``CLOUDOPS_HOME``, else a local one."""
    from app.home import cloudops_home
    from app.interfaces.endpoint_client import AppEndpoint

    endpoint = AppEndpoint.discover(cloudops_home())
    return AppRunner(endpoint) if endpoint else LocalRunner(local_stack)
