"""The client is the final authority: every plan is checked here before anyone sees it, whoever wrote it
(the agent server, the bundled stack, a token holder of the local endpoint).

What a step may do is only (service, operation, parameters, account, region). Everything else a plan
carries is a claim, and each claim is re-derived here and compared:

* the operation must exist in botocore's model of a service this client runs, and every parameter must be
  a member of its input shape that botocore's validation accepts;
* every parameter value that names a resource of a type the estate tracks (an identifier member, an ARN,
  an instance id, a queue URL) must name a resource the lookup identified for this request, in the step's
  own account and region; the step's ``targets`` must be exactly those resources; an ARN of any other
  account than the configured ones is refused;
* the account must be a configured one and the profile the one configured for it;
* ``argv`` and ``command`` must be what this client renders from the call: the operator approves what runs;
* ``mutating`` and the need for approval come from the access-level table shipped with the client, never
  from the plan; a plan that calls a write "read-only" is refused;
* risk is assessed locally (the reviewed playbook's rules, or the access level) and the stricter of local
  and remote wins; the user's deny rules apply to every plan; approval of critical plans and of changes to
  production needs the target's name typed; data that failed its last sync or is older than the full-sync
  interval needs an acknowledgement.

A plan that fails a check raises PlanRefused with one sentence saying why; the service then answers with
the local stack's plan and audits the refusal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from agent import aws_models
from agent.access_levels import SERVICES, access
from agent.facts import resource_facts
from agent.playbook import Playbook
from agent.policy import rule_matches
from agent.protocol import (
    RISK_ORDER, AwsAccount, Confirmation, DenyRule, IdentifiedResource, PlanResponse, RiskAssessment, Step, plan_hash,
)
from agent.resource_refs import Reference, references
from agent.risk import assess, assess_operation, stricter

GLOBAL_REGIONS = {None, "", "global"}
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")


class PlanRefused(ValueError):
    """The plan claims something the client cannot confirm: it is not shown and never runs."""


@dataclass
class TrustContext:
    """What the client itself knows about one request."""

    resources: list[IdentifiedResource]
    accounts: list[AwsAccount]
    deny_rules: list[DenyRule] = field(default_factory=list)
    playbooks: dict[str, Playbook] = field(default_factory=dict)
    # A resource -> why its data may be out of date (failed last sync, older than the full-sync interval).
    freshness: Callable[[IdentifiedResource], str | None] | None = None
    # The operator's words: a change may act only on the resources they name (or those resources' members).
    prompt: str | None = None


def _handles(r: IdentifiedResource) -> set[str]:
    out = {r.resource_id, r.arn or "", r.name or ""}
    for key in ("queue_url",):
        value = r.attributes.get(key)
        if isinstance(value, str):
            out.add(value)
    return out - {""}


class _Resources:
    """The request's identified resources by every handle a call may name them with."""

    def __init__(self, resources: list[IdentifiedResource]):
        self.by_handle: dict[str, list[IdentifiedResource]] = {}
        for r in resources:
            for handle in _handles(r):
                self.by_handle.setdefault(handle, []).append(r)

    def related(self, value: str, account: AwsAccount, region: str) -> bool:
        """Whether ``value`` is listed in the relations (members, replicas, ...) of an identified resource
        of that account and region."""
        return any(value in _linked(r) and _fits(r, account, region) for rs in self.by_handle.values() for r in rs)

    def find(self, value: str, rtype: str | None = None) -> list[IdentifiedResource]:
        found = self.by_handle.get(value, [])
        if not found and value.startswith("arn:") and rtype == "lambda_function":
            found = self.by_handle.get(value.split(":")[-1], [])
        return [r for r in found if rtype is None or r.resource_type == rtype]


def _fits(resource: IdentifiedResource, account: AwsAccount, region: str) -> bool:
    if resource.account_id and account.account_id and resource.account_id != account.account_id:
        return False
    if not resource.account_id and resource.account_name and resource.account_name != account.name:
        return False
    return resource.region in GLOBAL_REGIONS or resource.resource_type == "iam_role" or resource.region == region


def _linked(resource: IdentifiedResource) -> set[str]:
    """What a resource points at: its relations (members, replicas, cluster) and ARN-valued attributes
    (an ECS service's cluster_arn)."""
    out = {v for values in resource.relations.values() for v in values}
    out |= {v for k, v in resource.attributes.items() if isinstance(v, str) and k.endswith(("_arn", "_url", "_id"))}
    return out


def _related(target: IdentifiedResource, other: IdentifiedResource) -> bool:
    return bool(_handles(other) & _linked(target)) or bool(_handles(target) & _linked(other))


def _account_of(step: Step, accounts: list[AwsAccount]) -> AwsAccount:
    """The configured account the step runs in (by id, else by name); refused when it is not configured."""
    for account in accounts:
        if step.account_id and account.account_id == step.account_id:
            return account
    for account in accounts:
        if not step.account_id and step.account_name and account.name == step.account_name:
            return account
        if step.account_id and not account.account_id and step.account_name and account.name == step.account_name:
            return account
    if len(accounts) == 1 and (not (step.account_id or step.account_name) or not accounts[0].account_id):
        # One account whose id this client does not know (the default credentials): every call runs in
        # whatever account those credentials belong to, so the plan cannot point it anywhere else.
        return accounts[0]
    where = step.account_id or step.account_name or "no account"
    raise PlanRefused(f"{step.step_id} runs in {where}, which is not a configured account")


def _check_references(step: Step, refs: list[Reference], known: _Resources, account: AwsAccount,
                      configured_ids: set[str]) -> list[IdentifiedResource]:
    """The identified resources the call names; refuses any name the lookup did not identify here."""
    named: list[IdentifiedResource] = []
    for ref in refs:
        if ref.arn is not None and ref.arn.account not in ("", "aws") and configured_ids \
                and ref.arn.account not in configured_ids:
            raise PlanRefused(f"{step.step_id} names {ref.value!r} in account {ref.arn.account}, "
                              "which is not a configured account")
        if ref.resource_type is None or ref.creates:
            continue
        candidates = known.find(ref.value, ref.resource_type)
        if not candidates and known.related(ref.value, account, step.region):
            continue  # a member of an identified resource (the reader a cluster fails over to)
        if not candidates:
            raise PlanRefused(f"{step.step_id} names {ref.value!r} ({ref.path}), which the lookup did not "
                              "identify for this request")
        fitting = [r for r in candidates if _fits(r, account, step.region)]
        if not fitting:
            where = ", ".join(sorted({f"{r.account_name or r.account_id} / {r.region}" for r in candidates}))
            raise PlanRefused(f"{step.step_id} runs in {account.name} / {step.region}, but {ref.value!r} is in {where}")
        for r in fitting[:1]:
            if r not in named:
                named.append(r)
    return named


def _claimed_targets(step: Step, known: _Resources, account: AwsAccount) -> list[IdentifiedResource]:
    out: list[IdentifiedResource] = []
    for target in step.targets:
        fitting = [r for r in known.find(target) if _fits(r, account, step.region)]
        # A target is a resource_id: the resource with that id, before others that merely carry it as a name
        # (an Auto Scaling group's instances are tagged with the group's name).
        fitting.sort(key=lambda r: r.resource_id != target)
        if not fitting:
            raise PlanRefused(f"{step.step_id} says it acts on {target!r}, which the lookup did not identify "
                              f"in {account.name} / {step.region}")
        if fitting[0] not in out:
            out.append(fitting[0])
    return out


def verify_step(step: Step, trust: TrustContext, known: _Resources) -> tuple[Step, list[IdentifiedResource]]:
    """The step as this client will run it, and the resources it acts on; PlanRefused when a claim fails."""
    if step.service not in SERVICES:
        raise PlanRefused(f"{step.step_id} calls the {step.service!r} service, which this client does not run")
    try:
        members = aws_models.input_members(step.service, step.operation)
    except aws_models.UnknownOperation as exc:
        raise PlanRefused(f"{step.step_id}: {exc}") from None
    unknown = sorted(set(step.parameters) - set(members))
    if unknown:
        raise PlanRefused(f"{step.step_id}: {step.operation} has no parameter {unknown[0]!r}")
    problems = aws_models.validate_parameters(step.service, step.operation, step.parameters)
    if problems:
        raise PlanRefused(f"{step.step_id}: {step.operation} parameters are not valid: {problems[0]}")
    if not _REGION.match(step.region or ""):
        raise PlanRefused(f"{step.step_id} runs in {step.region!r}, which is not an AWS region name")
    account = _account_of(step, trust.accounts)
    if step.profile != account.profile:
        raise PlanRefused(f"{step.step_id} uses profile {step.profile!r}, but account {account.name} is configured "
                          f"with {account.profile!r}")
    configured_ids = {a.account_id for a in trust.accounts if a.account_id}
    named = _check_references(step, references(step.service, step.operation, step.parameters), known, account,
                              configured_ids)
    claimed = _claimed_targets(step, known, account)
    claimed_ids = {r.resource_id for r in claimed}
    if not claimed_ids <= {r.resource_id for r in named}:
        says = ", ".join(r.display_name for r in claimed) or "nothing"
        calls = ", ".join(r.display_name for r in named) or "nothing"
        raise PlanRefused(f"{step.step_id} says it acts on {says}, but its call names {calls}")
    for other in (r for r in named if r.resource_id not in claimed_ids):
        # Beyond its targets a call may name only their own members (the reader a failover promotes).
        if not any(_related(target, other) for target in claimed):
            says = ", ".join(r.display_name for r in claimed) or "nothing"
            raise PlanRefused(f"{step.step_id} says it acts on {says}, but its call names {other.display_name}")
    if not claimed and not named:
        _refuse_untargeted_names(step)
        if account.regions and step.region not in account.regions:
            raise PlanRefused(f"{step.step_id} runs in {step.region}, which is not a region configured for "
                              f"{account.name} ({', '.join(account.regions)})")
    if step.waiter and step.waiter not in aws_models.waiter_names(step.service):
        raise PlanRefused(f"{step.step_id} waits with {step.waiter!r}, which {step.service} does not have")
    acc = access(step.service, step.operation)
    if acc.mutating and not step.mutating:
        raise PlanRefused(f"{step.step_id} calls {step.operation} read-only, but it changes resources ({acc.level})")
    argv = aws_models.render_cli(step.service, step.operation, step.parameters, step.region, account.profile)
    if step.argv != argv or step.command != aws_models.command_line(argv):
        raise PlanRefused(f"{step.step_id}: the command shown is not the call it stands for "
                          f"(expected {aws_models.command_line(argv)!r})")
    checked = step.model_copy(deep=True, update={
        "mutating": acc.mutating, "access": acc.encode(), "account_id": account.account_id or step.account_id,
        "account_name": account.name, "targets": [r.resource_id for r in claimed] or [r.resource_id for r in named]})
    return checked, named


_NAMING_MEMBER = re.compile(r"(Name|Names|Id|Ids|Identifier|Identifiers|Arn|Arns|ARN|ARNs|Url|Urls|^name|^cluster"
                            r"|^service|^clusters|^services)$")
# Operations that make something new: a name among their parameters is the new thing's, not a reference.
_MAKING_VERBS = ("Create", "Run", "Put", "Register", "Import", "Copy", "Restore", "Allocate", "Request", "Purchase",
                 "Publish", "Send", "Start")


def _refuse_untargeted_names(step: Step) -> None:
    """A step that acts on no identified resource may not name one either (``DeleteUser UserName=x`` with
    no target is refused); only an operation that makes something may carry the new thing's name."""
    if step.operation.startswith(_MAKING_VERBS):
        return
    members = aws_models.input_members(step.service, step.operation)
    for name, value in step.parameters.items():
        if _NAMING_MEMBER.search(name) and members.get(name) is not None and value not in (None, "", []):
            raise PlanRefused(f"{step.step_id} acts on no identified resource but names {value!r} ({name})")


def _check_question(steps: list[Step], trust: TrustContext) -> None:
    """A question about the estate is answered by reading: a plan that changes something in answer to
    "which instances are stopped?" is refused, whoever made it."""
    if not trust.prompt:
        return
    from agent.prompt import question_form

    if question_form(trust.prompt) is None:
        return
    for step in steps:
        if access(step.service, step.operation).mutating:
            raise PlanRefused(f"the request reads as a question, and {step.step_id} would change something "
                              f"({step.operation})")


def _check_named_targets(steps: list[Step], targets: list[IdentifiedResource], trust: TrustContext) -> None:
    """When the prompt names resources, a change acts only on them or their own members: the lookup also
    sends near neighbours (pg-instance-main2 beside pg-instance-main1), and a plan that picks one of those
    is consistent with itself yet not what was asked."""
    if not trust.prompt:
        return
    from agent.mentions import find_mentions

    mentions = find_mentions(trust.prompt, trust.resources)
    named = [m.resource for m in mentions]
    if not named:
        return
    # "the dlq of payments-queue" names the dead-letter queue; the queue it belongs to is linked to it, yet is
    # exactly what the request did not ask to change.
    owners = [m.part_of for m in mentions if m.part_of is not None and m.part_of not in named]
    by_id = {t.resource_id: t for t in targets}
    for step in steps:
        if not access(step.service, step.operation).needs_approval:
            continue
        for target in (by_id[t] for t in step.targets if t in by_id):
            if target not in named and (target in owners or not any(_related(n, target) for n in named)):
                raise PlanRefused(f"the request names {', '.join(n.display_name for n in named)}, but "
                                  f"{step.step_id} changes {target.display_name}")


def _check_excluded_targets(steps: list[Step], targets: list[IdentifiedResource], trust: TrustContext) -> None:
    """"Stop every instance in staging except web-1": a change to web-1 is the opposite of the request,
    whoever planned it and whatever resources were sent with it."""
    if not trust.prompt:
        return
    from agent.mentions import excluded_words, is_excluded

    words = excluded_words(trust.prompt)
    if not words:
        return
    by_id = {t.resource_id: t for t in targets}
    for step in steps:
        if not access(step.service, step.operation).needs_approval:
            continue
        for target in (by_id[t] for t in step.targets if t in by_id):
            if is_excluded(target, words):
                raise PlanRefused(f"the request excludes {', '.join(words)}, but {step.step_id} changes "
                                  f"{target.display_name}")


def _curated(plan: PlanResponse, steps: list[Step], playbooks: dict[str, Playbook]) -> Playbook | None:
    """The reviewed playbook the plan says it follows, when every step is one of that playbook's calls."""
    playbook = playbooks.get(plan.classification.playbook or "")
    if playbook is None:
        return None
    calls = {(playbook.step_service(s), s.operation) for s in playbook.steps}
    return playbook if all((s.service, s.operation) in calls for s in steps) else None


def _local_risk(plan: PlanResponse, steps: list[Step], targets: list[IdentifiedResource],
                trust: TrustContext) -> tuple[RiskAssessment, Playbook | None]:
    accounts = len({t.account_id or t.account_name for t in targets}) or 1
    facts = [resource_facts(t, target_count=len(targets), cross_account=accounts > 1) for t in targets]
    # -- the call's own values (issue 13 item 4): rules read param.<Member> of the steps, as the planner's do --
    sent = [{k: v for s in steps if t.resource_id in s.targets for k, v in s.parameters.items()} for t in targets]
    playbook = _curated(plan, steps, trust.playbooks)
    if playbook is not None:
        return assess(playbook, facts, accounts=accounts, parameters=sent), playbook
    local = RiskAssessment(level="low", reasons=[])
    for step in steps:
        step_targets = [f for t, f in zip(targets, facts) if t.resource_id in step.targets]
        one = assess_operation(step.service, step.operation, step_targets, accounts=accounts,
                               parameters=[step.parameters for _ in step_targets] or [step.parameters])
        # -- end of the call's own values --
        local.level = stricter(local.level, one.level)
        local.reasons += [r for r in one.reasons if r not in local.reasons]
    return local, None


def _apply_deny_rules(steps: list[Step], targets: list[IdentifiedResource], playbook_id: str, level: str,
                      rules: list[DenyRule]) -> list[str]:
    by_id = {t.resource_id: t for t in targets}
    reasons: list[str] = []
    for step in steps:
        for target in [by_id[t] for t in step.targets if t in by_id] or [None]:
            production = bool(target is not None and resource_facts(target)["production"])
            for rule in rules:
                if rule_matches(rule, playbook_id, step, target, production, level) and rule.reason not in step.denied_by:
                    step.denied_by.append(rule.reason)
        reasons += [r for r in step.denied_by if r not in reasons]
    return reasons


def _confirmation(steps: list[Step], targets: list[IdentifiedResource], level: str,
                  trust: TrustContext) -> Confirmation | None:
    changing = [s for s in steps if access(s.service, s.operation).needs_approval]
    if not changing:
        return None
    changed = [t for t in targets if any(t.resource_id in s.targets for s in changing)]
    reasons = []
    if level == "critical":
        reasons.append("critical risk")
    production = [t for t in changed if resource_facts(t)["production"]]
    if production:
        reasons.append("changes production: " + ", ".join(t.display_name for t in production))
    stale = [why for t in targets if trust.freshness and (why := trust.freshness(t))]
    if not reasons and not stale:
        return None
    phrase = None
    if reasons:
        if len(changed) == 1:
            phrase = changed[0].display_name
        else:
            names = sorted({s.account_name or s.account_id or "" for s in changing} - {""})
            phrase = ", ".join(names) or changing[0].operation
    return Confirmation(phrase=phrase, reasons=reasons, stale="; ".join(dict.fromkeys(stale)) or None)


def _summary(steps: list[Step], risk: RiskAssessment, approval: bool, by_id: dict[str, IdentifiedResource]) -> str:
    lines = ["Checked by this client (what will run):"]
    for n, step in enumerate(steps, 1):
        names = ", ".join(by_id[t].display_name if t in by_id else t for t in step.targets) or "no existing resource"
        lines.append(f"Step {n}: {step.service} {step.operation} on {names} in "
                     f"{step.account_name or step.account_id} / {step.region} ({step.access}).")
    lines.append(f"Risk {risk.level}" + (f" (this client: {risk.local_level}; server: {risk.remote_level})"
                                         if risk.remote_level else "") + ".")
    if risk.denied:
        lines.append("DENIED by policy: " + "; ".join(risk.denied_reasons) + ". It cannot be approved.")
    elif approval:
        lines.append("Approval is required before anything runs.")
    return "\n".join(lines)


def verify_plan(plan: PlanResponse, trust: TrustContext) -> PlanResponse:
    """The plan as this client will show and run it, re-derived from its calls; PlanRefused if it lies."""
    known = _Resources(trust.resources)
    if plan.clarification is not None and plan.script.steps:
        raise PlanRefused("the plan asks a question and still carries steps")
    steps: list[Step] = []
    targets: list[IdentifiedResource] = []
    seen_ids: set[str] = set()
    for step in plan.script.steps:
        if step.step_id in seen_ids:
            raise PlanRefused(f"two steps are called {step.step_id}")
        seen_ids.add(step.step_id)
        checked, named = verify_step(step, trust, known)
        steps.append(checked)
        targets += [r for r in named if r not in targets]
    if not steps:
        return plan.model_copy(update={"identified_resources": trust.resources, "approval_required": False,
                                       "answer": None,
                                       "plan_hash": None, "checked_by": "client", "confirmation": None,
                                       "data_as_of": _oldest(trust.resources)})
    _check_named_targets(steps, targets, trust)
    _check_excluded_targets(steps, targets, trust)
    _check_question(steps, trust)
    local, playbook = _local_risk(plan, steps, targets, trust)
    # The plan's own assessment (the server's, or the local stack's with the prompt's values) counts too:
    # the stricter of the two wins and every reason is shown.
    remote = plan.risk_assessment
    from_server = plan.served_by == "server"
    level = stricter(local.level, remote.level)
    reasons = list(local.reasons) + [r for r in remote.reasons if r not in local.reasons]
    risk = RiskAssessment(level=level, reasons=reasons, impact=(local.impact or remote.impact),
                          rollback=(local.rollback if playbook is not None else remote.rollback),
                          local_level=local.level, remote_level=remote.level if from_server else None)
    # A denial the plan already carries stands (steps keep their denied_by); local rules add to it.
    risk.denied_reasons = _apply_deny_rules(steps, targets, plan.classification.playbook or "", level,
                                            trust.deny_rules)
    risk.denied_reasons += [r for r in remote.denied_reasons if r not in risk.denied_reasons]
    risk.denied = bool(risk.denied_reasons) or remote.denied
    approval = any(access(s.service, s.operation).needs_approval for s in steps) or plan.approval_required
    by_id = {t.resource_id: t for t in trust.resources}
    explain = _summary(steps, risk, approval, by_id)
    explain = (explain + "\n\nThe agent server's explanation:\n" + plan.explain_plan) if from_server else \
        (plan.explain_plan + "\n\n" + explain)
    warnings = list(plan.warnings)
    confirmation = _confirmation(steps, targets, level, trust)
    if confirmation and confirmation.stale:
        warnings.append("the data may be out of date: " + confirmation.stale)
    return plan.model_copy(update={
        "identified_resources": trust.resources, "script": plan.script.model_copy(update={"steps": steps}),
        "risk_assessment": risk, "approval_required": approval, "plan_hash": plan_hash(steps),
        "explain_plan": explain, "warnings": warnings, "confirmation": confirmation, "checked_by": "client",
        "answer": None,  # an answer about the estate comes from this client's index, never from a plan
        "data_as_of": _oldest(targets or trust.resources)})


def _oldest(resources: list[IdentifiedResource]):
    times = [r.synced_at for r in resources if r.synced_at is not None]
    return min(times) if times else None


def needs_approval(step: Step) -> bool:
    """What the executor asks of every step it is handed, whatever the plan says of it."""
    return access(step.service, step.operation).needs_approval


def risk_rank(level: str) -> int:
    return RISK_ORDER[level]
