"""Deterministic risk assessment: the playbook's own rules plus rules that hold for every operation.

The level is the highest any rule reaches; every rule that fires leaves a reason, including those
that only inform (a Multi-AZ instance, no read replicas), so the operator sees why.
"""

from __future__ import annotations

from agent.facts import TYPE_NOUNS, condition_holds
from agent.playbook import Playbook
from agent.protocol import RISK_ORDER, RiskAssessment

LEVELS = ["low", "medium", "high", "critical"]
MANY_TARGETS = 5


def _raise(level: str, to: str) -> str:
    return to if RISK_ORDER[to] > RISK_ORDER[level] else level


def _bump(level: str) -> str:
    return LEVELS[min(RISK_ORDER[level] + 1, len(LEVELS) - 1)]


def assess(playbook: Playbook, target_facts: list[dict], *, accounts: int = 1) -> RiskAssessment:
    """Risk of running ``playbook`` against targets described by ``target_facts``."""
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
        for facts in target_facts:
            if condition_holds(rule.when.facts, facts):
                level = _raise(level, rule.level)
                add(rule.reason)
                break
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
    if len(target_facts) >= MANY_TARGETS:
        level = _bump(level)
        reasons.append(f"wide scope: {len(target_facts)} resources at once")
    if accounts > 1:
        reasons.append(f"spans {accounts} accounts")
    return RiskAssessment(level=level, reasons=reasons)


def stricter(level_a: str, level_b: str) -> str:
    return _raise(level_a, level_b)
