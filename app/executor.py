"""Running an approved plan: each step is the boto3 call its CLI line stands for, with the step's own
profile and region, followed by its waiter; the first failure stops the run, and the report says what
ran, what did not and the state it left. Never a shell; never a mutating call without an approval that
was pinned to this exact plan; a step a deny rule matched never runs.

``dry_run`` is the display-only executor over the same plan: where the API has ``DryRun`` (EC2), AWS
is asked whether the call would be allowed, and nothing changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import jmespath
from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from agent import aws_models
from agent.protocol import PlanResponse, Step
from app.approvals import ApprovalBook, ApprovalError
from app.audit import AuditTrail
from app.awsclient import AccountSession
from app.sync import describe_error

StepStatus = Literal["succeeded", "failed", "not_run"]


@dataclass
class StepOutcome:
    step_id: str
    operation: str
    targets: list[str]
    status: StepStatus
    aws_request_id: str | None = None
    waited_for: str | None = None
    error: str | None = None


@dataclass
class ExecutionReport:
    plan_hash: str | None
    steps: list[StepOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.status == "succeeded" for s in self.steps)

    @property
    def state_left(self) -> str:
        ran = [s for s in self.steps if s.status == "succeeded"]
        failed = [s for s in self.steps if s.status == "failed"]
        not_run = [s for s in self.steps if s.status == "not_run"]
        if not failed:
            return f"all {len(ran)} steps succeeded"
        parts = [f"{len(ran)} step(s) ran: " + ", ".join(f"{s.step_id} {s.operation} on {', '.join(s.targets)}" for s in ran)
                 if ran else "no step changed anything"]
        parts += [f"{s.step_id} {s.operation} failed: {s.error}" for s in failed]
        if not_run:
            parts.append("not run: " + ", ".join(f"{s.step_id} {s.operation}" for s in not_run))
        return "; ".join(parts)


class Executor:
    def __init__(self, approvals: ApprovalBook, audit: AuditTrail, *, waiter_delay: float = 15.0,
                 waiter_attempts: int = 80):
        self.approvals = approvals
        self.audit = audit
        self.waiter_delay = waiter_delay
        self.waiter_attempts = waiter_attempts
        self._sessions: dict[tuple[str | None, str | None], AccountSession] = {}

    def _client(self, step: Step):
        key = (step.account_name, step.profile)
        if key not in self._sessions:
            self._sessions[key] = AccountSession(step.account_name or "default", step.profile, [step.region])
        return self._sessions[key].client(step.service, step.region)

    def run(self, plan: PlanResponse, approval_id: str | None = None) -> ExecutionReport:
        """Run every step of ``plan`` in order; raises ApprovalError before anything runs when not allowed."""
        if plan.risk_assessment.denied:
            self.audit.record("refusal", request_id=plan.request_id, plan_hash=plan.plan_hash,
                              detail="denied by policy: " + "; ".join(plan.risk_assessment.denied_reasons))
            raise ApprovalError("denied by policy: " + "; ".join(plan.risk_assessment.denied_reasons))
        if any(s.mutating for s in plan.script.steps):
            if not approval_id:
                self.audit.record("refusal", request_id=plan.request_id, plan_hash=plan.plan_hash, detail="not approved")
                raise ApprovalError("this plan changes resources and has not been approved")
            try:
                self.approvals.consume(approval_id, plan)
            except ApprovalError as exc:
                self.audit.record("refusal", request_id=plan.request_id, plan_hash=plan.plan_hash, detail=str(exc))
                raise
        report = ExecutionReport(plan.plan_hash)
        failed = False
        for step in plan.script.steps:
            if failed:
                report.steps.append(StepOutcome(step.step_id, step.operation, step.targets, "not_run"))
                continue
            outcome = self._run_step(step)
            report.steps.append(outcome)
            self.audit.record("step", request_id=plan.request_id, plan_hash=plan.plan_hash, account_id=step.account_id,
                              region=step.region, operation=step.operation, parameters=step.parameters,
                              outcome=outcome.status, aws_request_id=outcome.aws_request_id, detail=outcome.error)
            failed = outcome.status == "failed"
        return report

    def _run_step(self, step: Step) -> StepOutcome:
        outcome = StepOutcome(step.step_id, step.operation, step.targets, "succeeded")
        if step.denied_by:
            outcome.status, outcome.error = "failed", "denied by policy: " + "; ".join(step.denied_by)
            return outcome
        try:
            client = self._client(step)
            response = getattr(client, xform_name(step.operation))(**step.parameters)
            outcome.aws_request_id = response.get("ResponseMetadata", {}).get("RequestId")
            if step.waiter:
                self._wait(client, step)
                outcome.waited_for = step.waiter
        except (ClientError, BotoCoreError, WaiterError, TimeoutError) as exc:
            outcome.status, outcome.error = "failed", describe_error(exc)
        return outcome

    def _wait(self, client, step: Step) -> None:
        custom = aws_models.CUSTOM_WAITERS.get((step.service, step.waiter))
        if custom is None:
            waiter = client.get_waiter(step.waiter)
            accepted = set(aws_models.input_members(step.service, waiter.config.operation))
            args = {k: v for k, v in step.parameters.items() if k in accepted}
            waiter.wait(**args, WaiterConfig={"Delay": self.waiter_delay, "MaxAttempts": self.waiter_attempts})
            return
        accepted = set(aws_models.input_members(step.service, custom["operation"]))
        args = {k: v for k, v in step.parameters.items() if k in accepted}
        call = getattr(client, xform_name(custom["operation"]))
        for _ in range(self.waiter_attempts):
            values = jmespath.search(custom["argument"], call(**args)) or []
            if values and all(v == custom["expected"] for v in values):
                return
            time.sleep(self.waiter_delay)
        raise TimeoutError(f"{step.waiter}: not {custom['expected']} after {self.waiter_attempts} checks")

    def dry_run(self, plan: PlanResponse) -> dict[str, str]:
        """Per step: what AWS says about the call without making it (DryRun), or that it cannot say."""
        results = {}
        for step in plan.script.steps:
            if not step.mutating:
                results[step.step_id] = "read-only"
                continue
            if "DryRun" not in aws_models.input_members(step.service, step.operation):
                results[step.step_id] = "no dry run for this API"
                continue
            try:
                getattr(self._client(step), xform_name(step.operation))(**step.parameters, DryRun=True)
                results[step.step_id] = "would succeed"
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                results[step.step_id] = "would succeed" if code == "DryRunOperation" else describe_error(exc)
            except BotoCoreError as exc:
                results[step.step_id] = describe_error(exc)
        return results
