"""What the syncing identity may do to each resource, read from its IAM policies where it can read them.

The caller (an IAM user, or the role behind an assumed-role session) has its attached, inline and (for
users) group policies read once per account. Each resource is then checked for the operations our
playbooks run on its type: an explicit Deny wins; an Allow with a Condition counts as not allowed
(we cannot evaluate conditions here, and a false "allowed" is worse than a false "no"). Anything that
cannot be read makes the account's permissions ``unknown``; nothing is guessed. IAM's own simulator is
the authority when it is reachable; this is the offline approximation the planner can show.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.awsclient import error_code

# Operations our playbooks run, by resource type (IAM action names).
ACTIONS_BY_TYPE: dict[str, list[str]] = {
    "rds_db_instance": ["rds:DescribeDBInstances", "rds:StopDBInstance", "rds:StartDBInstance", "rds:RebootDBInstance",
                        "rds:CreateDBSnapshot", "rds:ModifyDBInstance", "rds:DeleteDBInstance"],
    "rds_db_cluster": ["rds:DescribeDBClusters", "rds:StopDBCluster", "rds:StartDBCluster", "rds:FailoverDBCluster"],
    "ec2_instance": ["ec2:DescribeInstances", "ec2:StartInstances", "ec2:StopInstances", "ec2:RebootInstances",
                     "ec2:TerminateInstances", "ec2:CreateImage"],
    "ec2_volume": ["ec2:DescribeVolumes", "ec2:CreateSnapshot"],
    "s3_bucket": ["s3:ListBucket", "s3:DeleteBucket", "s3:PutBucketVersioning", "s3:GetBucketVersioning",
                  "s3:PutBucketPublicAccessBlock"],
    "lambda_function": ["lambda:InvokeFunction", "lambda:GetFunctionConfiguration", "lambda:PutFunctionConcurrency",
                        "lambda:DeleteFunctionConcurrency"],
    "dynamodb_table": ["dynamodb:DescribeTable", "dynamodb:CreateBackup", "dynamodb:UpdateContinuousBackups"],
    "sqs_queue": ["sqs:PurgeQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes"],
    "sns_topic": ["sns:Publish", "sns:ListSubscriptionsByTopic", "sns:GetTopicAttributes"],
    "autoscaling_group": ["autoscaling:SetDesiredCapacity", "autoscaling:SuspendProcesses",
                          "autoscaling:ResumeProcesses", "autoscaling:StartInstanceRefresh",
                          "autoscaling:DescribeAutoScalingGroups"],
    "ecs_service": ["ecs:UpdateService", "ecs:DescribeServices"],
    "elbv2_target_group": ["elasticloadbalancing:DescribeTargetHealth"],
    "elbv2_load_balancer": ["elasticloadbalancing:DescribeLoadBalancers"],
    "eks_cluster": ["eks:DescribeCluster"],
    "cloudformation_stack": ["cloudformation:DescribeStacks"],
}


@dataclass
class Statement:
    effect: str
    actions: list[str]
    not_actions: list[str]
    resources: list[str]
    conditional: bool

    def covers(self, action: str, arn: str) -> bool:
        low = action.lower()
        if self.actions and not any(fnmatchcase(low, a.lower()) for a in self.actions):
            return False
        if self.not_actions and any(fnmatchcase(low, a.lower()) for a in self.not_actions):
            return False
        return any(fnmatchcase(arn, r) for r in self.resources) if self.resources else True


@dataclass
class CallerPolicies:
    """The caller's statements, or why they could not be read."""

    principal: str | None = None
    statements: list[Statement] = field(default_factory=list)
    unknown_reason: str | None = None

    def evaluate(self, resource_type: str, arn: str) -> dict[str, Any]:
        if self.unknown_reason is not None:
            return {"status": "unknown", "reason": self.unknown_reason}
        allowed, denied = [], []
        for action in ACTIONS_BY_TYPE.get(resource_type, []):
            if any(s.effect == "Deny" and s.covers(action, arn) for s in self.statements):
                denied.append(action)
            elif any(s.effect == "Allow" and not s.conditional and s.covers(action, arn) for s in self.statements):
                allowed.append(action)
        return {"status": "derived", "source": self.principal, "allowed": allowed, "denied": denied,
                "note": "from identity policies; SCPs, boundaries and resource policies not evaluated"}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def parse_document(document: Any) -> list[Statement]:
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    out = []
    for st in statements:
        out.append(Statement(effect=st.get("Effect", "Allow"), actions=_as_list(st.get("Action")),
                             not_actions=_as_list(st.get("NotAction")), resources=_as_list(st.get("Resource")),
                             conditional=bool(st.get("Condition"))))
    return out


def read_caller_policies(account, region: str) -> CallerPolicies:
    """Read the identity policies of ``account``'s caller (an AccountSession)."""
    try:
        arn = account.client("sts", region).get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError) as exc:
        return CallerPolicies(unknown_reason=f"caller identity: {type(exc).__name__}")
    kind, _, rest = arn.split(":", 5)[-1].partition("/")
    iam = account.client("iam", region)
    try:
        if kind == "assumed-role":
            name = rest.split("/")[0]
            return CallerPolicies(f"role/{name}", _role_statements(iam, name))
        if kind == "user":
            name = rest.split("/")[-1]
            return CallerPolicies(f"user/{name}", _user_statements(iam, name))
        return CallerPolicies(unknown_reason=f"principal kind {kind!r} is not read")
    except ClientError as exc:
        return CallerPolicies(unknown_reason=f"IAM not readable: {error_code(exc)}")
    except BotoCoreError as exc:
        return CallerPolicies(unknown_reason=f"IAM not readable: {type(exc).__name__}")


def _managed(iam, policy_arn: str) -> list[Statement]:
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    return parse_document(iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]["Document"])


def _statements(iam, kind: str, name: str) -> list[Statement]:
    """Attached (managed) and inline policies of one principal; ``kind`` is role, user or group, and
    IAM names its calls and parameters after it (list_attached_role_policies, RoleName, ...)."""
    key = {f"{kind.capitalize()}Name": name}
    out: list[Statement] = []
    for page in iam.get_paginator(f"list_attached_{kind}_policies").paginate(**key):
        for policy in page["AttachedPolicies"]:
            out += _managed(iam, policy["PolicyArn"])
    for page in iam.get_paginator(f"list_{kind}_policies").paginate(**key):
        for policy_name in page["PolicyNames"]:
            inline = getattr(iam, f"get_{kind}_policy")(PolicyName=policy_name, **key)
            out += parse_document(inline["PolicyDocument"])
    return out


def _role_statements(iam, name: str) -> list[Statement]:
    return _statements(iam, "role", name)


def _user_statements(iam, name: str) -> list[Statement]:
    out = _statements(iam, "user", name)
    for page in iam.get_paginator("list_groups_for_user").paginate(UserName=name):
        for group in page["Groups"]:
            out += _statements(iam, "group", group["GroupName"])
    return out
