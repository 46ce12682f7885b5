"""Plan → approve/deny → execute, for the CLI, in one of two places: in this process (it opens the
index, the approval book and the audit trail itself) or in the running app (through its endpoint,
because the app owns the index while it runs). ``cloudops plan`` and ``cloudops run`` do not need to
know which: both runners take and give the same things, and refusals arrive as ``NotRun``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from agent.protocol import PlanRequest, PlanResponse


class NotRun(RuntimeError):
    """The plan was not approved or not executed (expired, used, denied by a rule, tampered)."""


class Runner(Protocol):
    where: str

    def plan(self, request: PlanRequest | None, prompt: str, offline: bool, server_url: str | None) -> PlanResponse: ...
    def dry_run(self, plan: PlanResponse) -> dict[str, str]: ...
    def approve(self, plan: PlanResponse) -> str: ...
    def deny(self, plan: PlanResponse, reason: str) -> None: ...
    def execute(self, plan: PlanResponse, approval_id: str | None) -> dict[str, Any]: ...
    def close(self) -> None: ...


class LocalRunner:
    """Everything in this process: lookup in the local index, the agent server or the local stack,
    approvals in ``state.db``, the audit trail in ``audit.db``, boto3 for the steps."""

    where = "this process"

    def __init__(self, local_stack: Callable[[], Any]):
        from app.execution.approvals import ApprovalBook
        from app.execution.audit import AuditTrail
        from app.home import cloudops_home

        self.local_stack = local_stack
        self.approvals = ApprovalBook(cloudops_home() / "state.db")
        self.audit = AuditTrail(cloudops_home() / "audit.db")

    def plan(self, request: PlanRequest | None, prompt: str, offline: bool, server_url: str | None) -> PlanResponse:
        from app.estate.estate import Estate
        from app.execution.remote import plan_with_fallback

        estate = Estate()
        try:
            if request is None:
                from app.estate.context import build_request

                request = build_request(prompt, estate.lookup(), estate.store, estate.config)
            server = None if offline or estate.config.offline else (server_url or estate.config.server_url)
        finally:
            estate.close()
        response = plan_with_fallback(request, server, self.local_stack)
        self.audit.record("plan", request_id=response.request_id, prompt=prompt, plan_hash=response.plan_hash,
                          detail=response.classification.playbook)
        return response

    def dry_run(self, plan: PlanResponse) -> dict[str, str]:
        """Per step, what AWS says of the call without making it (where the API has DryRun)."""
        from app.execution.executor import Executor

        if plan.risk_assessment.denied or not any(s.mutating for s in plan.script.steps):
            return {}
        try:
            return Executor(self.approvals, self.audit).dry_run(plan)
        except Exception as exc:  # noqa: BLE001 - a dry run is advice: say why it could not run
            return {s.step_id: f"dry run not possible: {type(exc).__name__}" for s in plan.script.steps}

    def approve(self, plan: PlanResponse) -> str:
        from app.execution.approvals import ApprovalError

        try:
            approval = self.approvals.approve(plan)
        except ApprovalError as exc:
            self.audit.record("denial", request_id=plan.request_id, plan_hash=plan.plan_hash, detail=str(exc))
            raise NotRun(str(exc)) from None
        self.audit.record("approval", request_id=plan.request_id, plan_hash=plan.plan_hash)
        return approval.approval_id

    def deny(self, plan: PlanResponse, reason: str) -> None:
        self.audit.record("denial", request_id=plan.request_id, plan_hash=plan.plan_hash, detail=reason)

    def execute(self, plan: PlanResponse, approval_id: str | None) -> dict[str, Any]:
        from app.execution.approvals import ApprovalError
        from app.execution.executor import Executor

        from app.estate.estate import Estate

        try:
            report = Executor(self.approvals, self.audit).run(plan, approval_id)
        except ApprovalError as exc:
            raise NotRun(str(exc)) from None
        result = {"ok": report.ok, "state_left": report.state_left, "steps": [s.__dict__ for s in report.steps]}
        if any(s.status != "not_run" for s in report.steps):
            estate = Estate()
            try:
                note = estate.refresh_after_run(plan)
            finally:
                estate.close()
            if note:
                result["index_note"] = note
        return result

    def close(self) -> None:
        self.approvals.close()
        self.audit.close()


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
        if plan.risk_assessment.denied or not any(s.mutating for s in plan.script.steps):
            return {}
        return self._refusable(self.endpoint.call, "POST", "/v1/dryrun", {"request_id": plan.request_id})["results"]

    def approve(self, plan: PlanResponse) -> str:
        return self._refusable(self.endpoint.approve, plan.request_id)["approval_id"]

    def deny(self, plan: PlanResponse, reason: str) -> None:
        self._refusable(self.endpoint.deny, plan.request_id, reason)

    def execute(self, plan: PlanResponse, approval_id: str | None) -> dict[str, Any]:
        return self._refusable(self.endpoint.execute, plan.request_id, approval_id)

    def close(self) -> None:
        pass


def open_runner(local_stack: Callable[[], Any]) -> Runner:
    """The running app's runner when one answers for this ``CLOUDOPS_HOME``, else a local one."""
    from app.interfaces.endpoint_client import AppEndpoint
    from app.home import cloudops_home

    endpoint = AppEndpoint.discover(cloudops_home())
    return AppRunner(endpoint) if endpoint else LocalRunner(local_stack)
