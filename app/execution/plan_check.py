"""Checks a plan from the agent server against the request the client sent, before anyone sees it.

Why: the server knows operations, the client knows the estate. A compromised or buggy server could
answer a well-formed PlanResponse whose step acts on a resource the lookup never identified, in another
account or region, or with another profile of the user's; schema validation alone would let it through
to the approval screen (and one hurried click to the executor, which runs each step with its own profile).
A plan that fails here is treated like garbage: the local stack answers, and the answer says why.
"""

from __future__ import annotations

from agent.protocol import IdentifiedResource, PlanRequest, PlanResponse


class ForeignPlan(ValueError):
    """The plan does something the request did not ask the client to allow."""


def _resources_by_handle(request: PlanRequest) -> dict[str, list[IdentifiedResource]]:
    """Each resource under its id, ARN and name (one name may live in several accounts)."""
    out: dict[str, list[IdentifiedResource]] = {}
    for r in request.identified_resources:
        for handle in {r.resource_id, r.arn, r.name} - {None, ""}:
            out.setdefault(handle, []).append(r)
    return out


def _fits(step, resource: IdentifiedResource) -> bool:
    if step.account_id and resource.account_id and step.account_id != resource.account_id:
        return False
    return not resource.region or resource.region == "global" or step.region == resource.region


def check_plan_against_request(request: PlanRequest, response: PlanResponse) -> None:
    """Raise ForeignPlan unless every step targets identified resources only, in their own account and
    region, with the profile the user configured for that account, and runs the aws CLI only."""
    known = _resources_by_handle(request)
    profiles = {a.account_id: a.profile for a in request.user_context.aws_accounts if a.account_id and a.profile}
    for step in response.script.steps:
        if not step.argv or step.argv[0] != "aws":
            raise ForeignPlan(f"step {step.step_id} does not run the aws CLI")
        accounts = set()
        for target in step.targets:
            candidates = known.get(target)
            if not candidates:
                raise ForeignPlan(f"step {step.step_id} targets {target!r}, which the lookup did not identify")
            fitting = [r for r in candidates if _fits(step, r)]
            if not fitting:
                where = ", ".join(sorted(f"account {r.account_id} / {r.region}" for r in candidates))
                raise ForeignPlan(f"step {step.step_id} runs in account {step.account_id} / {step.region}, "
                                  f"but {target!r} is in {where}")
            accounts.update(r.account_id for r in fitting if r.account_id)
        account = step.account_id or (next(iter(accounts)) if len(accounts) == 1 else None)
        expected = profiles.get(account) if account else None
        if expected and step.profile != expected:
            raise ForeignPlan(f"step {step.step_id} uses profile {step.profile!r}, not {expected!r} of account {account}")
