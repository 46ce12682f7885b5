"""Which API parameters name a resource of the estate, and of which type.

Two readers need this and must agree:
* the client's plan verification: every value that names a resource of a type the estate tracks must
  name a resource the lookup identified for this request, in the step's own account and region; a plan
  that names anything else (a server's "billing-mysql" under a step that says pg-instance-main1) is
  refused;
* the operation catalogue: an operation is bound to a resource type through these members
  (``DBInstanceIdentifier`` of rds takes an ``rds_db_instance``), so the whole API is plannable.

A value names a tracked resource when its member is an identifier member below, when it is an ARN of a
tracked type, or when it has the shape of a tracked id (``i-0abc...``, an SQS queue URL). Members that
name the resource an operation *creates* (``DBInstanceIdentifier`` of CreateDBInstance) are new names,
not references.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agent import aws_models

# service -> member -> (resource type, the IdentifiedResource field its value is taken from)
IDENTIFIER_MEMBERS: dict[str, dict[str, tuple[str, str]]] = {
    "rds": {"DBInstanceIdentifier": ("rds_db_instance", "resource_id"),
            "SourceDBInstanceIdentifier": ("rds_db_instance", "resource_id"),
            "TargetDBInstanceIdentifier": ("rds_db_instance", "resource_id"),
            "ReplicaDBInstanceIdentifier": ("rds_db_instance", "resource_id"),
            "DBClusterIdentifier": ("rds_db_cluster", "resource_id"),
            "SourceDBClusterIdentifier": ("rds_db_cluster", "resource_id")},
    "ec2": {"InstanceId": ("ec2_instance", "resource_id"), "InstanceIds": ("ec2_instance", "resource_id"),
            "VolumeId": ("ec2_volume", "resource_id"), "VolumeIds": ("ec2_volume", "resource_id")},
    "s3": {"Bucket": ("s3_bucket", "resource_id")},
    "lambda": {"FunctionName": ("lambda_function", "resource_id")},
    "dynamodb": {"TableName": ("dynamodb_table", "resource_id"), "SourceTableName": ("dynamodb_table", "resource_id"),
                 "TableArn": ("dynamodb_table", "arn")},
    "ecs": {"cluster": ("ecs_cluster", "resource_id"), "clusters": ("ecs_cluster", "resource_id"),
            "service": ("ecs_service", "resource_id"), "services": ("ecs_service", "resource_id"),
            "serviceName": ("ecs_service", "name")},
    "elbv2": {"LoadBalancerArn": ("elbv2_load_balancer", "resource_id"),
              "LoadBalancerArns": ("elbv2_load_balancer", "resource_id"),
              "TargetGroupArn": ("elbv2_target_group", "resource_id"),
              "TargetGroupArns": ("elbv2_target_group", "resource_id")},
    "autoscaling": {"AutoScalingGroupName": ("autoscaling_group", "resource_id"),
                    "AutoScalingGroupNames": ("autoscaling_group", "resource_id"),
                    "InstanceIds": ("ec2_instance", "resource_id"), "InstanceId": ("ec2_instance", "resource_id")},
    "sqs": {"QueueUrl": ("sqs_queue", "resource_id")},
    "sns": {"TopicArn": ("sns_topic", "resource_id")},
    "eks": {"clusterName": ("eks_cluster", "resource_id")},
    "cloudformation": {"StackName": ("cloudformation_stack", "resource_id")},
    "iam": {"RoleName": ("iam_role", "resource_id")},
}
# Members whose type depends on the operation.
OPERATION_MEMBERS: dict[tuple[str, str], dict[str, tuple[str, str]]] = {
    ("elbv2", "DescribeLoadBalancers"): {"Names": ("elbv2_load_balancer", "name")},
    ("elbv2", "DescribeTargetGroups"): {"Names": ("elbv2_target_group", "name")},
    **{("eks", op): {"name": ("eks_cluster", "resource_id")}
       for op in ("DescribeCluster", "DeleteCluster", "UpdateClusterConfig", "UpdateClusterVersion",
                  "DescribeClusterVersions", "ListUpdates", "DescribeUpdate", "DeregisterCluster")},
}
# Operations that create the resource their identifier member names: that value is a new name.
CREATES: dict[tuple[str, str], str] = {
    ("rds", "CreateDBInstance"): "DBInstanceIdentifier", ("rds", "CreateDBInstanceReadReplica"): "DBInstanceIdentifier",
    ("rds", "RestoreDBInstanceFromDBSnapshot"): "DBInstanceIdentifier",
    ("rds", "RestoreDBInstanceFromS3"): "DBInstanceIdentifier",
    ("rds", "RestoreDBInstanceToPointInTime"): "TargetDBInstanceIdentifier",
    ("rds", "CreateDBCluster"): "DBClusterIdentifier", ("rds", "RestoreDBClusterFromSnapshot"): "DBClusterIdentifier",
    ("rds", "RestoreDBClusterFromS3"): "DBClusterIdentifier",
    ("rds", "RestoreDBClusterToPointInTime"): "DBClusterIdentifier",
    ("s3", "CreateBucket"): "Bucket", ("lambda", "CreateFunction"): "FunctionName",
    ("dynamodb", "CreateTable"): "TableName", ("autoscaling", "CreateAutoScalingGroup"): "AutoScalingGroupName",
    ("cloudformation", "CreateStack"): "StackName", ("iam", "CreateRole"): "RoleName",
    ("eks", "CreateCluster"): "name", ("ecs", "CreateService"): "serviceName",
}

_ARN = re.compile(r"^arn:(aws[a-z-]*):([a-z0-9-]+):([a-z0-9-]*):(\d{12}|aws)?:(.+)$")
# (arn service, resource prefix) -> type
_ARN_TYPES: list[tuple[str, re.Pattern[str], str]] = [
    ("rds", re.compile(r"^db:"), "rds_db_instance"), ("rds", re.compile(r"^cluster:"), "rds_db_cluster"),
    ("ec2", re.compile(r"^instance/"), "ec2_instance"), ("ec2", re.compile(r"^volume/"), "ec2_volume"),
    ("s3", re.compile(r"^[^/]+$"), "s3_bucket"), ("lambda", re.compile(r"^function:"), "lambda_function"),
    ("dynamodb", re.compile(r"^table/[^/]+$"), "dynamodb_table"), ("ecs", re.compile(r"^cluster/"), "ecs_cluster"),
    ("ecs", re.compile(r"^service/"), "ecs_service"),
    ("elasticloadbalancing", re.compile(r"^loadbalancer/"), "elbv2_load_balancer"),
    ("elasticloadbalancing", re.compile(r"^targetgroup/"), "elbv2_target_group"),
    ("autoscaling", re.compile(r"^autoScalingGroup:"), "autoscaling_group"), ("sqs", re.compile(r"^[^:/]+$"), "sqs_queue"),
    ("sns", re.compile(r"^[^:/]+$"), "sns_topic"), ("eks", re.compile(r"^cluster/"), "eks_cluster"),
    ("cloudformation", re.compile(r"^stack/"), "cloudformation_stack"), ("iam", re.compile(r"^role/"), "iam_role"),
]
_ID_SHAPES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^i-[0-9a-f]{8,17}$"), "ec2_instance"), (re.compile(r"^vol-[0-9a-f]{8,17}$"), "ec2_volume"),
    (re.compile(r"^https?://(sqs\.[a-z0-9-]+\.amazonaws\.com|[^/]*sqs[^/]*|localhost[^/]*|127\.0\.0\.1[^/]*)/\d{12}/[^/]+$"),
     "sqs_queue"),
]


@dataclass(frozen=True)
class ArnParts:
    service: str
    region: str
    account: str
    resource: str


def parse_arn(value: str) -> ArnParts | None:
    m = _ARN.match(value)
    if not m:
        return None
    return ArnParts(service=m.group(2), region=m.group(3), account=m.group(4) or "", resource=m.group(5))


def arn_type(value: str) -> str | None:
    """The tracked resource type an ARN names, or None (not an ARN, or a type the estate does not hold)."""
    parts = parse_arn(value)
    if parts is None:
        return None
    for service, pattern, rtype in _ARN_TYPES:
        if parts.service == service and pattern.search(parts.resource):
            return rtype
    return None


def id_type(value: str) -> str | None:
    """The tracked type a bare id has the shape of (``i-...``, ``vol-...``, a queue URL), or None."""
    return next((rtype for pattern, rtype in _ID_SHAPES if pattern.match(value)), None)


def member_type(service: str, operation: str, member: str) -> tuple[str, str] | None:
    """(resource type, IdentifiedResource field) an identifier member takes, or None."""
    return OPERATION_MEMBERS.get((service, operation), {}).get(member) or IDENTIFIER_MEMBERS.get(service, {}).get(member)


@dataclass(frozen=True)
class Reference:
    """One value in a call's parameters that names a resource."""

    path: str                 # e.g. "DBInstanceIdentifier", "Targets[0].Id"
    value: str
    resource_type: str | None  # None: an ARN or id of a type the estate does not track
    creates: bool = False      # the operation creates this resource: a new name, not a reference
    arn: ArnParts | None = None


def _leaves(shape, value: Any, path: str, member: str) -> Iterator[tuple[str, str, Any]]:
    """(path, member name, string value) of every string inside ``value``, walked with its shape."""
    kind = getattr(shape, "type_name", None)
    if isinstance(value, str):
        yield path, member, value
    elif isinstance(value, list):
        inner = shape.member if kind == "list" else None
        for i, item in enumerate(value):
            yield from _leaves(inner, item, f"{path}[{i}]", member)
    elif isinstance(value, dict):
        members = shape.members if kind == "structure" else {}
        for key, item in value.items():
            if kind == "map":
                yield from _leaves(shape.value, item, f"{path}.{key}", member)
            else:
                yield from _leaves(members.get(key), item, f"{path}.{key}" if path else str(key), str(key))


def references(service: str, operation: str, parameters: dict[str, Any]) -> list[Reference]:
    """Every value in ``parameters`` that names a resource, with its type where the estate tracks it."""
    members = aws_models.input_members(service, operation)
    creates = CREATES.get((service, operation))
    out: list[Reference] = []
    for name, value in parameters.items():
        shape = members.get(name)
        for path, member, text in _leaves(shape, value, name, name):
            typed = member_type(service, operation, member)
            parts = parse_arn(text)
            if typed is not None:
                rtype = arn_type(text) if parts else typed[0]
                out.append(Reference(path, text, rtype or typed[0], creates=(member == creates and path == name),
                                     arn=parts))
            elif parts is not None:
                out.append(Reference(path, text, arn_type(text), arn=parts))
            elif (rtype := id_type(text)) is not None:
                out.append(Reference(path, text, rtype))
    return out
