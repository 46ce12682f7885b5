"""Deterministic risk assessment: the playbook's own rules plus rules that hold for every operation.

The level is the highest any rule reaches; every rule that fires leaves a reason, including those
that only inform (a Multi-AZ instance, no read replicas), so the operator sees why.
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from pathlib import Path
from typing import Any

from agent.facts import TYPE_NOUNS, condition_holds
from agent.playbook import Playbook, PlaybookError, RiskRule, _field_path
from agent.protocol import RISK_ORDER, RiskAssessment

PARAMETER_RISKS_PATH = Path(__file__).parent / "data" / "parameter_risks.yaml"


class ParameterRisk(RiskRule):
    """A rule on a call's own values that holds for every plan (agent/data/parameter_risks.yaml)."""

    operations: list[str] = []


@lru_cache(maxsize=1)
def parameter_risks(path: Path = PARAMETER_RISKS_PATH) -> tuple[ParameterRisk, ...]:
    """The shipped rules, checked like a playbook's (a bad one names the file and the field)."""
    import yaml
    from pydantic import ValidationError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PlaybookError(path, "(file)", str(exc)) from None
    if not isinstance(data, list):
        raise PlaybookError(path, "(root)", "must be a list of rules")
    rules = []
    for i, item in enumerate(data):
        try:
            rules.append(ParameterRisk.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PlaybookError(path, f"[{i}]." + _field_path(first["loc"], item), first["msg"]) from None
    return tuple(rules)


class _Fill(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def parameter_reasons(calls: list[tuple[str, str, dict[str, Any], dict[str, Any]]]) -> list[tuple[str, str]]:
    """(level, reason) of every shipped parameter rule that holds for one of ``calls``: (service, operation,
    the target's facts, the call's parameters)."""
    out: list[tuple[str, str]] = []
    for rule in parameter_risks():
        for service, operation, facts, params in calls:
            if rule.operations and not any(fnmatch.fnmatchcase(f"{service}:{operation}", o)
                                           or fnmatch.fnmatchcase(operation, o) for o in rule.operations):
                continue
            if condition_holds(rule.when.facts, facts, params):
                reason = rule.reason.format_map(_Fill({**{k: v for k, v in facts.items() if v is not None}, **params}))
                if (rule.level, reason) not in out:
                    out.append((rule.level, reason))
                break
    return out

LEVELS = ["low", "medium", "high", "critical"]
MANY_TARGETS = 5


def _raise(level: str, to: str) -> str:
    return to if RISK_ORDER[to] > RISK_ORDER[level] else level


def _bump(level: str) -> str:
    return LEVELS[min(RISK_ORDER[level] + 1, len(LEVELS) - 1)]


def assess(playbook: Playbook, target_facts: list[dict], *, accounts: int = 1,
           parameters: list[dict] | None = None) -> RiskAssessment:
    """Risk of running ``playbook`` against targets described by ``target_facts``; ``parameters`` (one dict per
    target: the API parameters its steps send) let rules read the call's values (``param.DesiredCapacity``)."""
    params = parameters if parameters is not None else [{} for _ in target_facts]
    if playbook.read_only:
        return RiskAssessment(level="low", reasons=["read-only: nothing is changed"], impact=playbook.impact.strip(),
                              rollback=None)
    level = playbook.risk.base
    reasons: list[str] = []

    def add(reason: str) -> None:
        if reason not in reasons:
            reasons.append(reason)

    if playbook.risk.base_reason:
        add(playbook.risk.base_reason)
    production = [f for f in target_facts if f.get("production")]
    if production:
        nouns = sorted({TYPE_NOUNS.get(f["resource_type"], "resource") for f in production})
        add("production " + " and ".join(nouns))
        level = _raise(level, "medium")
    for rule in playbook.risk.rules:
        for facts, values in zip(target_facts, params):
            if condition_holds(rule.when.facts, facts, values):
                level = _raise(level, rule.level)
                add(rule.reason.format_map(_Fill({**{k: v for k, v in facts.items() if v is not None}, **values})))
                break
    calls = [(playbook.step_service(step), step.operation, facts, values)
             for facts, values in zip(target_facts, params) for step in playbook.steps if playbook.is_mutating(step)]
    for rule_level, reason in parameter_reasons(calls):
        level = _raise(level, rule_level)
        add(reason)
    if playbook.destructive:
        level = _raise(level, "high")
        add("irreversible: data or resources are deleted")
        if production:
            level = _raise(level, "critical")
    if len(target_facts) >= MANY_TARGETS:
        level = _bump(level)
        add(f"wide scope: {len(target_facts)} resources at once")
    if accounts > 1:
        add(f"spans {accounts} accounts")
    return RiskAssessment(level=level, reasons=reasons, impact=playbook.impact.strip(), rollback=playbook.rollback)


def assess_operation(service: str, operation: str, target_facts: list[dict], *, accounts: int = 1,
                     parameters: list[dict] | None = None) -> RiskAssessment:
    """Risk of an operation no reviewed playbook covers, from the access-level table alone: reads are low,
    reads that return secrets or data are high, writes are at least high ("no reviewed playbook"),
    deletions and terminations critical. Production and scope are added as for playbooks."""
    from agent.access_levels import access

    acc = access(service, operation)
    if not acc.needs_approval:
        return RiskAssessment(level="low", reasons=["read-only: nothing is changed"])
    values = parameters if parameters is not None else []
    reasons: list[str] = []
    if not acc.mutating:
        level = "high"
        reasons.append(f"sensitive read: {acc.sensitive_reason or 'returns secrets or data'}")
    else:
        level = "high"
        reasons.append(f"no reviewed playbook for this operation ({service} {operation}, {acc.level})")
        if acc.sensitive_reason:
            reasons.append(f"sensitive: {acc.sensitive_reason}")
        if acc.destructive:
            level = "critical"
            reasons.append("deletes, terminates or releases: it cannot be undone")
    production = [f for f in target_facts if f.get("production")]
    if production:
        nouns = sorted({TYPE_NOUNS.get(f["resource_type"], "resource") for f in production})
        reasons.append("production " + " and ".join(nouns))
        if acc.mutating:
            level = _raise(level, "critical") if acc.destructive else level
    # The call's own values: one parameter dict per target (or per step when it acts on none).
    pairs = list(zip(target_facts, values)) if len(values) == len(target_facts) and target_facts else \
        [(f, v) for f in (target_facts or [{}]) for v in (values or [{}])]
    for rule_level, reason in parameter_reasons([(service, operation, f, v) for f, v in pairs]):
        level = _raise(level, rule_level)
        if reason not in reasons:
            reasons.append(reason)
    if len(target_facts) >= MANY_TARGETS:
        level = _bump(level)
        reasons.append(f"wide scope: {len(target_facts)} resources at once")
    if accounts > 1:
        reasons.append(f"spans {accounts} accounts")
    return RiskAssessment(level=level, reasons=reasons)


def stricter(level_a: str, level_b: str) -> str:
    return _raise(level_a, level_b)
