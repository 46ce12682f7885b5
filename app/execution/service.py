"""The one application service: plan → verify → dry run → approve/deny → execute → audit.

The CLI (in this process, app.execution.runner.LocalRunner) and the local endpoint (the running app)
both call this object, so the rules cannot drift between them:

* every plan, whoever wrote it, is checked by app.execution.verify before anyone sees it; a server's plan
  that fails is replaced by the local stack's, and the refusal is audited;
* the resources a plan may name are those this client identified: from its own lookup, from the index
  by ARN for a body sent to the endpoint (a token holder cannot plan for a resource the estate does not
  hold), or from the operator's own ``--resources`` file on the CLI;
* accounts and profiles come from config.yaml, deny rules from policy.yaml (and are sent to the server);
* approval of a critical plan or of a change to production needs the target's name typed; a plan on data
  that may be out of date needs an acknowledgement;
* a plan runs at most once (state.db records the run before its first step).
"""

from __future__ import annotations

import getpass
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from agent.protocol import Answer, AwsAccount, IdentifiedResource, PlanRequest, PlanResponse
from app.awsclient import SessionPool
from app.execution.approvals import Approval, ApprovalBook, ApprovalError
from app.execution.audit import AuditTrail
from app.execution.executor import Executor
from app.execution.report import ExecutionReport
from app.execution.verify import PlanRefused, TrustContext, verify_plan

APPROVAL_TTL_ENV = "CLOUDOPS_APPROVAL_TTL_S"  # seconds; the default is the approval book's 10 minutes
MAX_PLANS = 256
PlanStatus = Literal["planned", "denied", "approved", "running", "done"]


class NotRun(RuntimeError):
    """The plan was not approved or not executed (expired, used, denied, already ran, name not typed)."""


class PlanNotFound(LookupError):
    """No plan of that id in this process (denied, forgotten, or made by an earlier launch)."""


class UnknownResources(ValueError):
    """A request named resources the local index does not hold."""

    def __init__(self, names: list[str]):
        self.names = names
        super().__init__("not in the local index: " + ", ".join(names))


@dataclass
class PlanRecord:
    plan: PlanResponse
    status: PlanStatus = "planned"
    report: ExecutionReport | None = None
    approved_by: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def approval_ttl() -> timedelta | None:
    """The approval lifetime from ``CLOUDOPS_APPROVAL_TTL_S`` (tests shorten it), else the default."""
    raw = os.environ.get(APPROVAL_TTL_ENV)
    if not raw:
        return None
    seconds = float(raw)
    if not 1 <= seconds <= 24 * 3600:
        raise ValueError(f"{APPROVAL_TTL_ENV} must be between 1 and 86400 seconds")
    return timedelta(seconds=seconds)


def operator() -> str:
    """Who is at the keyboard, for the audit trail (the OS user; never a credential)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not a reason to refuse an approval
        return "unknown"


class OperationsService:
    """One per process. ``estate`` is the open app.estate.estate.Estate; ``lookup`` returns the current
    lookup index (the endpoint caches it between syncs); ``local_stack`` builds the bundled agent stack."""

    def __init__(self, estate, local_stack: Callable[[], Any], home: Path, *,
                 lookup: Callable[[], Any] | None = None, server_url: str | None = None,
                 sessions: SessionPool | None = None, sleep: Callable[[float], None] = time.sleep,
                 after_run: Callable[[PlanResponse], str | None] | None = None,
                 config: Callable[[], Any] | None = None):
        self.estate = estate
        self.local_stack = local_stack
        self.lookup = lookup or estate.lookup
        self.config = config or (lambda: estate.config)
        self.server_url = server_url
        ttl = approval_ttl()
        self.approvals = ApprovalBook(home / "state.db", **({"ttl": ttl} if ttl else {}))
        self.audit = AuditTrail(home / "audit.db")
        self.executor = Executor(self.approvals, self.audit, sessions=sessions or estate.sessions, sleep=sleep)
        self.after_run = after_run or estate.refresh_after_run
        self.home = home
        self.records: OrderedDict[str, PlanRecord] = OrderedDict()
        self.lock = threading.Lock()
        # Questions about the estate ("is the bastion running?") are answered from this client's index:
        # (prompt, index, store, freshness=) -> Answer | None.
        from app.estate.answers import answer_question

        self.answer_question: Callable[..., Answer | None] | None = answer_question

    # -- what the client knows ---------------------------------------------------------------------
    @cached_property
    def playbooks(self):
        """The reviewed playbooks, for the local risk of plans that follow one (YAML only, no model)."""
        from agent.playbook import default_playbook_dir, load_playbooks

        return {lp.playbook.id: lp.playbook for lp in load_playbooks(default_playbook_dir())}

    def deny_rules(self):
        from agent.policy import load_deny_rules
        from app.home import policy_file

        return load_deny_rules(policy_file())

    def freshness(self):
        from app.estate.freshness import Freshness

        return Freshness.of_store(self.estate.store, self.config().schedules.full_every_s)

    def _configured_accounts(self) -> list[AwsAccount]:
        from app.estate.context import user_context

        return user_context(self.config(), self._account_ids()).aws_accounts

    def _account_ids(self) -> dict[str, str]:
        try:
            index = self.lookup()
            return {str(n): str(i) for n, i in zip(index.account_names, index.account_ids)}
        except Exception:  # noqa: BLE001 - no index yet: ids come from config alone
            return {}

    # -- plan ------------------------------------------------------------------------------------
    def request_for(self, request: PlanRequest | None, prompt: str, *, from_index: bool) -> PlanRequest:
        """The request this client stands behind. ``from_index``: resources named in the body are replaced
        by the index's own documents (by ARN), and accounts and profiles come from config only."""
        from app.estate.context import build_request, user_context

        if request is None or not request.identified_resources:
            built = build_request(prompt if request is None else request.prompt, self.lookup(),
                                  self.estate.store, self.config())
            if request is not None:
                built = built.model_copy(update={"user_context": built.user_context.model_copy(
                    update={"deny_rules": request.user_context.deny_rules, "user_id": request.user_context.user_id})})
            request = built
        elif from_index:
            request = request.model_copy(update={
                "identified_resources": self._from_index(request.identified_resources),
                "user_context": user_context(self.config(), self._account_ids()).model_copy(
                    update={"deny_rules": request.user_context.deny_rules, "user_id": request.user_context.user_id})})
        elif not request.user_context.aws_accounts:
            request = request.model_copy(update={"user_context": request.user_context.model_copy(
                update={"aws_accounts": self._configured_accounts()})})
        rules = list(request.user_context.deny_rules)
        rules += [r for r in self.deny_rules() if r not in rules]
        return request.model_copy(update={"user_context": request.user_context.model_copy(update={"deny_rules": rules})})

    def _from_index(self, resources: list[IdentifiedResource]) -> list[IdentifiedResource]:
        missing = [r.display_name for r in resources if not r.arn]
        docs = self.estate.store.documents([r.arn for r in resources if r.arn])
        missing += [r.display_name for r in resources if r.arn and r.arn not in docs]
        if missing:
            raise UnknownResources(missing)
        return [docs[r.arn].to_identified(match_score=r.match_score, why=r.match_reason) for r in resources]

    def plan(self, request: PlanRequest | None, prompt: str, *, offline: bool = False, server_url: str | None = None,
             from_index: bool = False) -> PlanResponse:
        """Plan ``prompt`` (or ``request``), check the plan, remember it for approval and audit it."""
        from app.execution.remote import ServerUnavailable, plan_remote

        request = self.request_for(request, prompt, from_index=from_index)
        freshness = self.freshness()
        request = request.model_copy(update={"identified_resources": freshness.stamp(request.identified_resources)})
        trust = TrustContext(resources=request.identified_resources, accounts=request.user_context.aws_accounts,
                             deny_rules=request.user_context.deny_rules, playbooks=self.playbooks,
                             freshness=freshness.why_stale, prompt=request.prompt)
        config = self.config()
        server = None if offline or config.offline else (server_url or self.server_url or config.server_url)
        warnings: list[str] = []
        response = None
        if server:
            try:
                response = verify_plan(plan_remote(request, server), trust)
            except ServerUnavailable as exc:
                warnings.append(f"agent server not used ({exc}); planned locally")
            except PlanRefused as exc:
                warnings.append(f"the agent server's plan was refused by this client ({exc}); planned locally")
                self.audit.record("refusal", prompt=request.prompt, detail=f"server plan refused: {exc}")
        if response is None:
            local = self.local_stack().planner("local").plan(request)
            try:
                response = verify_plan(local, trust)
            except PlanRefused as exc:
                self.audit.record("refusal", request_id=local.request_id, prompt=request.prompt,
                                  detail=f"local plan refused: {exc}")
                response = local.model_copy(update={
                    "script": local.script.model_copy(update={"steps": []}), "approval_required": False,
                    "plan_hash": None, "checked_by": "client",
                    "warnings": local.warnings + [f"this client refused the plan it was given ({exc}); nothing will run"]})
        response.warnings[:0] = warnings
        if self.answer_question is not None and response.answer is None:
            answer = self.answer_question(request.prompt, self.lookup(), self.estate.store, freshness=freshness)
            if answer is not None:
                response.answer = answer
        self.audit.record("plan", request_id=response.request_id, prompt=request.prompt, plan_hash=response.plan_hash,
                          detail=response.classification.playbook, resource=_targets_text(response))
        with self.lock:
            self.records[response.request_id] = PlanRecord(response)
            while len(self.records) > MAX_PLANS:
                self.records.popitem(last=False)
        return response

    # -- after the plan ------------------------------------------------------------------------------
    def record(self, request_id: str) -> PlanRecord:
        with self.lock:
            record = self.records.get(request_id)
        if record is None:
            raise PlanNotFound("no such plan in this session (denied, or made by an earlier launch)")
        return record

    def dry_run(self, request_id: str) -> dict[str, str]:
        """Per step, what AWS says of the call without making it (where the API has DryRun)."""
        plan = self.record(request_id).plan
        if plan.risk_assessment.denied or not plan.approval_required:
            return {}
        try:
            return self.executor.dry_run(plan)
        except Exception as exc:  # noqa: BLE001 - a dry run is advice: say why it could not run
            return {s.step_id: f"dry run not possible: {type(exc).__name__}" for s in plan.script.steps}

    def approve(self, request_id: str, *, confirm: str | None = None, stale_ok: bool = False,
                via: str = "cli") -> Approval:
        """Approve the plan for one run; NotRun with one sentence saying why not."""
        record = self.record(request_id)
        plan = record.plan
        refusal = self._approval_refusal(record, confirm, stale_ok)
        if refusal is None:
            try:
                approval = self.approvals.approve(plan)
            except ApprovalError as exc:
                refusal = str(exc)
        if refusal is not None:
            self.audit.record("refusal", request_id=plan.request_id, plan_hash=plan.plan_hash, detail=refusal,
                              resource=_targets_text(plan), actor=f"{operator()} ({via})")
            raise NotRun(refusal)
        with self.lock:
            record.status, record.approved_by = "approved", f"{operator()} ({via})"
        self.audit.record("approval", request_id=plan.request_id, plan_hash=plan.plan_hash, resource=_targets_text(plan),
                          account_name=_accounts_text(plan), actor=record.approved_by,
                          detail="typed " + repr(plan.confirmation.phrase) if plan.confirmation and plan.confirmation.phrase
                          else None)
        return approval

    def _approval_refusal(self, record: PlanRecord, confirm: str | None, stale_ok: bool) -> str | None:
        plan = record.plan
        if record.status in ("running", "done"):
            return "this plan already ran; plan again to run it again"
        if record.status == "denied":
            return "this plan was denied; plan again"
        if not plan.script.steps:
            return "there is nothing to approve: the plan has no steps"
        if plan.risk_assessment.denied:
            return "denied by policy: " + "; ".join(plan.risk_assessment.denied_reasons)
        needed = plan.confirmation
        if needed and needed.phrase and (confirm or "").strip() != needed.phrase:
            why = "; ".join(needed.reasons)
            return (f"approving this plan takes the name typed ({why}): type {needed.phrase!r}"
                    + (f", not {confirm.strip()!r}" if confirm and confirm.strip() else ""))
        if needed and needed.stale and not stale_ok:
            return f"the data this plan was made on may be out of date ({needed.stale}); acknowledge it to approve"
        return None

    def deny(self, request_id: str, reason: str | None = None) -> None:
        record = self.record(request_id)
        with self.lock:
            if record.status in ("running", "done"):
                raise NotRun("this plan already ran")
            record.status = "denied"
        self.audit.record("denial", request_id=record.plan.request_id, plan_hash=record.plan.plan_hash,
                          detail="denied by the operator" + (f": {reason}" if reason else ""),
                          resource=_targets_text(record.plan), actor=operator())

    def execute(self, request_id: str, approval_id: str | None) -> ExecutionReport:
        """Run the plan once, then re-read the scopes it touched so the index shows what it left."""
        record = self.record(request_id)
        with self.lock:
            if record.status in ("running", "done"):
                raise NotRun("this plan already ran; plan again to run it again")
            if record.status == "denied":
                raise NotRun("this plan was denied; plan again")
            previous, record.status = record.status, "running"
        try:
            report = self.executor.run(record.plan, approval_id)
        except ApprovalError as exc:
            with self.lock:
                record.status = "done" if self.approvals.has_run(request_id) else previous
            raise NotRun(str(exc)) from None
        if any(s.status != "not_run" for s in report.steps):
            report.index_note = self.after_run(record.plan)
        with self.lock:
            record.status, record.report = "done", report
        return report

    def close(self) -> None:
        self.approvals.close()
        self.audit.close()


def _targets_text(plan: PlanResponse) -> str | None:
    names = {r.resource_id: r.display_name for r in plan.identified_resources}
    targets = list(dict.fromkeys(names.get(t, t) for s in plan.script.steps for t in s.targets))
    return ", ".join(targets) or None


def _accounts_text(plan: PlanResponse) -> str | None:
    return ", ".join(dict.fromkeys(s.account_name or s.account_id or "" for s in plan.script.steps)) or None
