"""Deny rules: a user's "never do this", evaluated after risk and before approval. A denied plan keeps
its steps (so the operator sees what was refused) but can never be approved or executed."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

import yaml
from pydantic import TypeAdapter, ValidationError

from agent.protocol import RISK_ORDER, DenyRule, IdentifiedResource, Step

_RULES = TypeAdapter(list[DenyRule])


class PolicyError(ValueError):
    pass


def load_deny_rules(path: Path) -> list[DenyRule]:
    """``deny_rules:`` from a YAML file (absent file: no rules)."""
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return _RULES.validate_python(data.get("deny_rules", []) if isinstance(data, dict) else data)
    except (yaml.YAMLError, ValidationError, AttributeError) as exc:
        raise PolicyError(f"{path}: invalid deny rules: {exc}") from None


def _any_glob(value: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(value.lower(), p.lower()) for p in patterns)


def rule_matches(rule: DenyRule, playbook_id: str, step: Step, target: IdentifiedResource | None,
                 production: bool, risk_level: str) -> bool:
    if rule.operations and not (_any_glob(step.operation, rule.operations)
                                or _any_glob(f"{step.service}:{step.operation}", rule.operations)):
        return False
    if rule.playbooks and not _any_glob(playbook_id, rule.playbooks):
        return False
    if rule.accounts and not ({step.account_id or "", (step.account_name or "").lower()} & {a.lower() for a in rule.accounts}):
        return False
    if rule.regions and not _any_glob(step.region, rule.regions):
        return False
    if rule.tags:
        tags = target.tags if target else {}
        for key, value in rule.tags.items():
            if key not in tags or (value != "*" and tags[key] != value):
                return False
    if rule.production is not None and rule.production != production:
        return False
    if rule.min_risk and RISK_ORDER[risk_level] < RISK_ORDER[rule.min_risk]:
        return False
    return True
