"""The operations agent: turns a playbook, its targets and the prompt's values into concrete steps.

Every parameter is bound from a resource field or a validated prompt value, coerced to the type
botocore's model expects, validated by botocore, and rendered as the equivalent AWS CLI argv.
One step per call the API needs: a batch member (``InstanceIds``) takes every target of one account
and region; otherwise each target gets its own call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from agent import aws_models
from agent.bindings import BindingError, placeholders, resolve
from agent.playbook import Playbook, StepSpec
from agent.protocol import IdentifiedResource, Step, UserContext


class StepBuildError(ValueError):
    """A step could not be built (a missing resource field, a value botocore rejects)."""


@dataclass
class AccountInfo:
    account_id: str | None
    name: str | None
    profile: str | None


@dataclass
class StepPlan:
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def account_info(resource: IdentifiedResource, context: UserContext) -> AccountInfo:
    for account in context.aws_accounts:
        if (resource.account_id and account.account_id == resource.account_id) or (
                not resource.account_id and resource.account_name and account.name == resource.account_name):
            return AccountInfo(account.account_id or resource.account_id, account.name, account.profile)
    return AccountInfo(resource.account_id, resource.account_name, None)


def _target_scope(resource: IdentifiedResource) -> dict[str, Any]:
    data = resource.model_dump()
    data["name"] = resource.display_name
    return data


def _omit_absent(bindings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Drop members bound only to optional parameters the operator did not give."""
    out = {}
    for member, binding in bindings.items():
        refs = placeholders(binding)
        if refs and all(r.startswith("param.") and r[6:] not in params for r in refs):
            continue
        out[member] = binding
    return out


def _groups(spec: StepSpec, targets: list[IdentifiedResource], default_region: str | None) -> list[list[IdentifiedResource]]:
    if spec.batch_member is None:
        return [[t] for t in targets]
    grouped: dict[tuple[str | None, str | None], list[IdentifiedResource]] = {}
    for t in targets:
        grouped.setdefault((t.account_id, t.region or default_region), []).append(t)
    return list(grouped.values())


def build_steps(playbook: Playbook, targets: list[IdentifiedResource], params_per_target: dict[str, dict[str, Any]],
                context: UserContext, now: datetime | None = None) -> StepPlan:
    """Concrete, validated steps. ``params_per_target`` maps a target's resource_id to its parameter values."""
    now = now or datetime.now(timezone.utc)
    plan = StepPlan()
    counter = 0
    for spec in playbook.steps:
        service = playbook.step_service(spec)
        for group in _groups(spec, targets, context.default_region):
            first = group[0]
            region = first.region or context.default_region
            if not region:
                raise StepBuildError(f"no region is known for {first.display_name}; name one (e.g. 'in us-east-1')")
            params = params_per_target.get(first.resource_id, {})
            account = account_info(first, context)
            scope = {
                "target": _target_scope(first),
                "targets": [_target_scope(t) for t in group],
                "param": params,
                "date": now.strftime("%Y%m%d-%H%M"),
                "account_id": account.account_id,
                "region": region,
            }
            try:
                bound = resolve(_omit_absent(spec.parameters, params), scope)
            except BindingError as exc:
                raise StepBuildError(f"{spec.operation} for {first.display_name}: {exc}") from None
            try:
                values = aws_models.coerce_parameters(service, spec.operation, bound)
            except ValueError as exc:
                raise StepBuildError(f"{spec.operation} for {first.display_name}: {exc}") from None
            problems = aws_models.validate_parameters(service, spec.operation, values)
            if problems:
                raise StepBuildError(f"{spec.operation} for {first.display_name}: " + "; ".join(problems))
            argv = aws_models.render_cli(service, spec.operation, values, region, account.profile)
            counter += 1
            plan.steps.append(Step(
                step_id=f"step-{counter}", service=service, operation=spec.operation, parameters=values,
                account_id=account.account_id, account_name=account.name, region=region, profile=account.profile,
                mutating=playbook.is_mutating(spec), command=aws_models.command_line(argv), argv=argv,
                description=spec.description or spec.operation,
                targets=[t.resource_id for t in group], waiter=spec.waiter,
            ))
    return plan
