"""Running an approved plan: each step is the boto3 call its CLI line stands for, with the step's own
profile and region, followed by its waiter; the first failure stops the run, and the report says what
ran, what did not and the state it left. Never a shell; never a call that needs approval (a write, or a
read that returns secrets, by the client's access-level table, whatever the plan says of it) without an
approval pinned to this exact plan; never a parameter that is not a member of the operation's input; a
step a deny rule matched never runs.

``dry_run`` is the display-only executor over the same plan: where the API has ``DryRun`` (EC2), AWS
is asked whether the call would be allowed, and nothing changes.

Sessions (the app's SessionPool) and the sleep between waiter polls come from outside, as in chalice's
executor, so the app reuses its clients and tests do not wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jmespath
from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from agent import aws_models
from agent.protocol import PlanResponse, Step
from app.execution.approvals import ApprovalBook, ApprovalError
from app.execution.audit import AuditTrail
from app.awsclient import SessionPool, describe_error, error_code
from app.execution.report import ExecutionReport, StepOutcome, output_of
from app.execution.verify import needs_approval


class Executor:
    def __init__(self, approvals: ApprovalBook, audit: AuditTrail, *, sessions: SessionPool | None = None,
                 sleep: Callable[[float], None] = time.sleep, waiter_delay: float = 15.0, waiter_attempts: int = 80):
        self.approvals = approvals
        self.audit = audit
        self.sessions = sessions or SessionPool()
        self.sleep = sleep
        self.waiter_delay = waiter_delay
        self.waiter_attempts = waiter_attempts

    def _client(self, step: Step):
        session = self.sessions.for_call(step.account_name or "default", step.profile, step.region)
        return session.client(step.service, step.region)

    def run(self, plan: PlanResponse, approval_id: str | None = None) -> ExecutionReport:
        """Run every step of ``plan`` in order; raises ApprovalError before anything runs when not allowed."""
        if plan.risk_assessment.denied:
            self.audit.record("refusal", request_id=plan.request_id, plan_hash=plan.plan_hash,
                              detail="denied by policy: " + "; ".join(plan.risk_assessment.denied_reasons))
            raise ApprovalError("denied by policy: " + "; ".join(plan.risk_assessment.denied_reasons))
        if any(needs_approval(s) or s.mutating for s in plan.script.steps):
            if not approval_id:
                self.audit.record("refusal", request_id=plan.request_id, plan_hash=plan.plan_hash, detail="not approved")
                raise ApprovalError("this plan changes resources and has not been approved")
            try:
                self.approvals.consume(approval_id, plan)
            except ApprovalError as exc:
                self.audit.record("refusal", request_id=plan.request_id, plan_hash=plan.plan_hash, detail=str(exc))
                raise
        try:
            self.approvals.claim_run(plan)  # at most once, whichever way the second call arrives
        except ApprovalError as exc:
            self.audit.record("refusal", request_id=plan.request_id, plan_hash=plan.plan_hash, detail=str(exc))
            raise
        report = ExecutionReport(request_id=plan.request_id, plan_hash=plan.plan_hash)
        failed = False
        for step in plan.script.steps:
            if failed:
                report.steps.append(_outcome(step, "not_run"))
                continue
            outcome = self._run_step(step)
            report.steps.append(outcome)
            self.audit.record("step", request_id=plan.request_id, plan_hash=plan.plan_hash, account_id=step.account_id,
                              region=step.region, operation=step.operation, parameters=step.parameters,
                              outcome=outcome.status, aws_request_id=outcome.aws_request_id, detail=outcome.error,
                              resource=", ".join(_names(plan, step)) or None, account_name=step.account_name)
            failed = outcome.status == "failed"
        return report

    def _run_step(self, step: Step) -> StepOutcome:
        outcome = _outcome(step, "succeeded")
        if step.denied_by:
            outcome.status, outcome.error = "failed", "denied by policy: " + "; ".join(step.denied_by)
            return outcome
        problems = _call_problems(step)
        if problems:
            outcome.status, outcome.error = "failed", "not run: " + problems
            return outcome
        try:
            client = self._client(step)
            response = getattr(client, xform_name(step.operation))(**step.parameters)
            outcome.aws_request_id = response.get("ResponseMetadata", {}).get("RequestId")
            outcome.output, outcome.output_truncated = output_of(response)
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
            self.sleep(self.waiter_delay)
        raise TimeoutError(f"{step.waiter}: not {custom['expected']} after {self.waiter_attempts} checks")

    def dry_run(self, plan: PlanResponse) -> dict[str, str]:
        """Per step: what AWS says about the call without making it (DryRun), or that it cannot say."""
        results = {}
        for step in plan.script.steps:
            if not (step.mutating or needs_approval(step)):
                results[step.step_id] = "read-only"
                continue
            if "DryRun" not in aws_models.input_members(step.service, step.operation) or _call_problems(step):
                results[step.step_id] = "no dry run for this API"
                continue
            try:
                getattr(self._client(step), xform_name(step.operation))(**step.parameters, DryRun=True)
                results[step.step_id] = "would succeed"
            except ClientError as exc:
                results[step.step_id] = "would succeed" if error_code(exc) == "DryRunOperation" else describe_error(exc)
            except BotoCoreError as exc:
                results[step.step_id] = describe_error(exc)
        return results


def _outcome(step: Step, status: str) -> StepOutcome:
    return StepOutcome(step_id=step.step_id, operation=step.operation, service=step.service, targets=step.targets,
                       mutating=step.mutating or needs_approval(step), status=status)


def _call_problems(step: Step) -> str | None:
    """Why a step's parameters cannot be handed to boto3: a name that is not a member of the operation's
    input (``endpoint_url`` among them) or a value botocore refuses. The plan was checked already; this is
    the last line before the call."""
    try:
        members = aws_models.input_members(step.service, step.operation)
    except aws_models.UnknownOperation as exc:
        return str(exc)
    unknown = sorted(set(step.parameters) - set(members))
    if unknown:
        return f"{step.operation} has no parameter {unknown[0]!r}"
    problems = aws_models.validate_parameters(step.service, step.operation, step.parameters)
    return problems[0] if problems else None


def _names(plan: PlanResponse, step: Step) -> list[str]:
    names = {r.resource_id: r.display_name for r in plan.identified_resources}
    return [names.get(t, t) for t in step.targets]
