"""Facts about a target that preconditions, risk rules and deny rules are written against.

Facts are derived only from what the client sent (tags, state, engine facts, relations,
constraints) and the size of the plan; nothing is looked up. A fact that cannot be known is None,
and a condition on an unknown fact does not hold.
"""

from __future__ import annotations

from typing import Any

from agent.protocol import IdentifiedResource

PRODUCTION_VALUES = {"prod", "production", "prd", "live"}
ENVIRONMENT_KEYS = ("env", "environment", "stage", "tier")

FACT_NAMES = frozenset({
    "production", "multi_az", "has_read_replicas", "is_read_replica", "state", "engine",
    "deletion_protection", "versioning", "resource_type", "target_count", "cross_account",
    "has_members", "encrypted", "min_size", "max_size", "desired_capacity", "desired_count", "messages",
    "messages_in_flight",
})
# A condition's value may compare instead of match: {param.DesiredCapacity: {lt: fact.min_size}}.
COMPARISONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})

# How a type is called in a risk reason ("production database").
TYPE_NOUNS = {
    "rds_db_instance": "database", "rds_db_cluster": "database cluster", "ec2_instance": "instance",
    "ec2_volume": "volume", "s3_bucket": "bucket", "lambda_function": "function",
    "dynamodb_table": "table", "ecs_cluster": "ECS cluster", "ecs_service": "ECS service",
    "elbv2_load_balancer": "load balancer", "elbv2_target_group": "target group",
    "autoscaling_group": "Auto Scaling group", "sqs_queue": "queue", "sns_topic": "topic",
    "eks_cluster": "EKS cluster", "cloudformation_stack": "stack", "iam_role": "IAM role",
}


def is_production(resource: IdentifiedResource) -> bool:
    """Production by tag (env/environment/stage = prod|production|...) or by account name."""
    for key, value in resource.tags.items():
        if key.lower() in ENVIRONMENT_KEYS and value.strip().lower() in PRODUCTION_VALUES:
            return True
    name = (resource.account_name or "").lower()
    return any(word in PRODUCTION_VALUES for word in name.replace("_", "-").split("-"))


def _flag(resource: IdentifiedResource, *keys: str) -> Any:
    for key in keys:
        if key in resource.constraints:
            return resource.constraints[key]
        if key in resource.attributes:
            return resource.attributes[key]
    return None


def resource_facts(resource: IdentifiedResource, *, target_count: int = 1, cross_account: bool = False) -> dict[str, Any]:
    replicas = resource.relations.get("read_replicas")
    has_replicas = _flag(resource, "has_read_replicas")
    if has_replicas is None and replicas is not None:
        has_replicas = bool(replicas)
    if has_replicas is None and resource.resource_type in ("rds_db_instance", "rds_db_cluster"):
        has_replicas = bool(resource.attributes.get("read_replica_identifiers"))
    source = resource.relations.get("source_instance") or resource.attributes.get("read_replica_source")
    members = resource.relations.get("members")
    return {
        "production": is_production(resource),
        "multi_az": resource.multi_az if resource.multi_az is not None else _flag(resource, "multi_az"),
        "has_read_replicas": has_replicas,
        "is_read_replica": bool(source) if source is not None or resource.resource_type == "rds_db_instance" else None,
        "state": (resource.current_state or "").lower() or None,
        "engine": (resource.engine or resource.attributes.get("engine") or None),
        "deletion_protection": _flag(resource, "deletion_protection"),
        "versioning": _flag(resource, "versioning"),
        "resource_type": resource.resource_type,
        "target_count": target_count,
        "cross_account": cross_account,
        "has_members": bool(members) if members is not None else None,
        "encrypted": _flag(resource, "encrypted", "storage_encrypted"),
        # Sizes and counts the synced document carries (Auto Scaling groups, ECS services, SQS queues).
        "min_size": _number(resource, "min_size"), "max_size": _number(resource, "max_size"),
        "desired_capacity": _number(resource, "desired_capacity"), "desired_count": _number(resource, "desired_count"),
        "messages": _number(resource, "approximate_messages"),
        "messages_in_flight": _number(resource, "approximate_messages_not_visible"),
    }


def _number(resource: IdentifiedResource, key: str) -> int | None:
    value = resource.attributes.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def condition_holds(condition: dict[str, Any], facts: dict[str, Any], params: dict[str, Any] | None = None) -> bool:
    """Every key must hold. Lists mean 'one of'; ``<fact>_not`` negates; ``target_count`` takes a minimum.

    ``param.<Member>`` reads the value the call sends (``params``: the API parameters of the target's step).
    A value may compare: ``{lt: 1}``, ``{ge: fact.min_size}``, ``{ne: param.MinSize}`` (eq, ne, lt, le, gt,
    ge). Anything unknown (a fact the client did not send, a member the call leaves out) does not hold."""
    for key, expected in condition.items():
        negate = key.endswith("_not") and not key.startswith("param.")
        name = key[:-4] if negate else key
        actual = (params or {}).get(name[6:]) if name.startswith("param.") else facts.get(name)
        if isinstance(expected, dict):
            holds = _compares(actual, expected, facts, params or {})
        elif name == "target_count":
            holds = actual is not None and actual >= int(expected)
        elif actual is None:
            return False
        elif isinstance(expected, list):
            holds = str(actual).lower() in {str(e).lower() for e in expected}
        elif isinstance(expected, bool):
            holds = bool(actual) is expected
        else:
            holds = str(actual).lower() == str(expected).lower()
        if holds == negate:
            return False
    return True


def reference(value: Any, facts: dict[str, Any], params: dict[str, Any]) -> Any:
    """``fact.<name>`` or ``param.<Member>`` in a comparison, else the literal itself."""
    if isinstance(value, str) and value.startswith("fact."):
        return facts.get(value[5:])
    if isinstance(value, str) and value.startswith("param."):
        return params.get(value[6:])
    return value


def _compares(actual: Any, comparison: dict[str, Any], facts: dict[str, Any], params: dict[str, Any]) -> bool:
    (op, raw), = comparison.items()
    other = reference(raw, facts, params)
    if actual is None or other is None:
        return False
    if op in ("eq", "ne"):
        same = actual == other if isinstance(actual, (bool, int, float)) else str(actual).lower() == str(other).lower()
        return same if op == "eq" else not same
    try:
        a, b = float(actual), float(other)
    except (TypeError, ValueError):
        return False
    return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
