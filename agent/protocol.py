"""The v1 wire protocol between the client and an agent stack (remote server or local fallback).

Every model here is a contract other tools rely on: field names are exact and additions are
backwards compatible. Requests forbid unknown top-level fields so that a typo is a 422 naming
the field instead of a silently ignored option. JSON Schemas generated from these models are
published under ``docs/protocol/``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

PROTOCOL_VERSION = "v1"
MAX_PROMPT_CHARS = 4000
MAX_RESOURCES = 200

RiskLevel = Literal["low", "medium", "high", "critical"]
RISK_ORDER: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}

# Canonical resource types, and the spellings accepted for them on the wire.
RESOURCE_TYPES: dict[str, str] = {
    "rds_db_instance": "rds",
    "rds_db_cluster": "rds",
    "ec2_instance": "ec2",
    "ec2_volume": "ec2",
    "s3_bucket": "s3",
    "lambda_function": "lambda",
    "dynamodb_table": "dynamodb",
    "ecs_cluster": "ecs",
    "ecs_service": "ecs",
    "elbv2_load_balancer": "elbv2",
    "elbv2_target_group": "elbv2",
    "autoscaling_group": "autoscaling",
    "sqs_queue": "sqs",
    "sns_topic": "sns",
    "eks_cluster": "eks",
    "cloudformation_stack": "cloudformation",
    "iam_role": "iam",
}
_TYPE_ALIASES: dict[str, str] = {
    "rds_instance": "rds_db_instance",
    "db_instance": "rds_db_instance",
    "aws::rds::dbinstance": "rds_db_instance",
    "rds_cluster": "rds_db_cluster",
    "aws::rds::dbcluster": "rds_db_cluster",
    "aws::ec2::instance": "ec2_instance",
    "aws::ec2::volume": "ec2_volume",
    "aws::s3::bucket": "s3_bucket",
    "aws::lambda::function": "lambda_function",
    "aws::dynamodb::table": "dynamodb_table",
    "aws::ecs::cluster": "ecs_cluster",
    "aws::ecs::service": "ecs_service",
    "aws::elasticloadbalancingv2::loadbalancer": "elbv2_load_balancer",
    "aws::elasticloadbalancingv2::targetgroup": "elbv2_target_group",
    "aws::autoscaling::autoscalinggroup": "autoscaling_group",
    "asg": "autoscaling_group",
    "aws::sqs::queue": "sqs_queue",
    "aws::sns::topic": "sns_topic",
    "aws::eks::cluster": "eks_cluster",
    "aws::cloudformation::stack": "cloudformation_stack",
    "aws::iam::role": "iam_role",
}
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")


def _account_id(value: str | None) -> str | None:
    if value is not None and not _ACCOUNT_ID.match(value):
        raise ValueError("account_id must be 12 digits")
    return value


AccountId = Annotated[str | None, AfterValidator(_account_id)]


def canonical_resource_type(value: str) -> str:
    """Map any accepted spelling of a resource type to its canonical name, or raise ValueError."""
    key = value.strip().lower().replace("-", "_").replace(".", "_")
    key = _TYPE_ALIASES.get(key, key)
    if key not in RESOURCE_TYPES:
        raise ValueError(f"unknown resource_type {value!r}; known: {', '.join(sorted(RESOURCE_TYPES))}")
    return key


# The identifier field each type is known by in the design's request ("db_instance_identifier":
# "pg-instance-main1"): accepted for ``resource_id`` so that a client writing the design's body is served.
IDENTIFIER_FIELDS: dict[str, tuple[str, ...]] = {
    "rds_db_instance": ("db_instance_identifier",), "rds_db_cluster": ("db_cluster_identifier",),
    "ec2_instance": ("instance_id",), "ec2_volume": ("volume_id",), "s3_bucket": ("bucket_name", "bucket"),
    "lambda_function": ("function_name",), "dynamodb_table": ("table_name",), "ecs_cluster": ("cluster_name",),
    "ecs_service": ("service_name",), "elbv2_load_balancer": ("load_balancer_arn",),
    "elbv2_target_group": ("target_group_arn",), "autoscaling_group": ("auto_scaling_group_name",),
    "sqs_queue": ("queue_url",), "sns_topic": ("topic_arn",), "eks_cluster": ("cluster_name",),
    "cloudformation_stack": ("stack_name",), "iam_role": ("role_name",),
}
# Facts the design's body states at the top level; kept in ``attributes`` where the planner reads them.
_TOP_LEVEL_ATTRIBUTES = ("engine_version", "instance_class", "instance_type")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentifiedResource(BaseModel):
    """One resource the client identified in its local estate. Only these reach an agent stack."""

    model_config = ConfigDict(extra="allow")

    resource_type: str = Field(description="Canonical type, e.g. rds_db_instance (aliases accepted).")
    resource_id: str = Field(min_length=1, max_length=2048, description="The API identifier (DBInstanceIdentifier, InstanceId, bucket name, queue URL, ARN, ...).")
    name: str | None = Field(default=None, max_length=512, description="Human name (Name tag or identifier).")
    arn: str | None = Field(default=None, max_length=2048)
    account_id: AccountId = None
    account_name: str | None = Field(default=None, max_length=128)
    region: str | None = None
    current_state: str | None = Field(default=None, max_length=64)
    engine: str | None = Field(default=None, max_length=64)
    multi_az: bool | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict, description="Type facts: engine_version, instance_class, cluster_arn, queue_url, ...")
    relations: dict[str, list[str]] = Field(default_factory=dict, description="read_replicas, source_instance, members, ...")
    available_permissions: list[str] = Field(default_factory=list)
    constraints: dict[str, Any] = Field(default_factory=dict, description="can_stop, has_read_replicas, deletion_protection, ...")
    match_score: float | None = Field(default=None, description="How well the client's lookup matched the prompt (0..1).")
    match_reason: str | None = None
    synced_at: datetime | None = Field(default=None, description="When the client last read this resource from AWS "
                                       "(its account/region/service scope's last successful sync).")

    @model_validator(mode="before")
    @classmethod
    def _design_spellings(cls, data: Any) -> Any:
        """The design's body names a resource by its type's identifier field and states facts at the top
        level: map them onto ``resource_id`` and ``attributes``, leaving explicit values alone."""
        if not isinstance(data, dict) or not isinstance(data.get("resource_type"), str):
            return data
        try:
            rtype = canonical_resource_type(data["resource_type"])
        except ValueError:
            return data  # the field validator names the bad type
        out = dict(data)
        if not out.get("resource_id"):
            for key in IDENTIFIER_FIELDS.get(rtype, ()):
                if isinstance(out.get(key), str) and out[key]:
                    out["resource_id"] = out[key]
                    out.setdefault("name", out[key])
                    break
        attributes = out.get("attributes")
        if attributes is None or isinstance(attributes, dict):
            attributes = dict(attributes or {})
            for key in _TOP_LEVEL_ATTRIBUTES:
                if key in out and key not in attributes:
                    attributes[key] = out[key]
            out["attributes"] = attributes
        return out

    @field_validator("resource_type")
    @classmethod
    def _canonical_type(cls, value: str) -> str:
        return canonical_resource_type(value)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name")
        return value

    @property
    def display_name(self) -> str:
        return self.name or self.resource_id


class AwsAccount(_Strict):
    account_id: AccountId = None
    name: str = Field(min_length=1, max_length=128)
    profile: str | None = Field(default=None, max_length=128)
    regions: list[str] = Field(default_factory=list)


class DenyRule(_Strict):
    """A user's rule that forbids a plan outright; it beats any approval."""

    reason: str = Field(min_length=1, max_length=500)
    operations: list[str] = Field(default_factory=list, description="API names or globs: DeleteDBInstance, Delete*, rds:*")
    playbooks: list[str] = Field(default_factory=list, description="Playbook ids or globs.")
    accounts: list[str] = Field(default_factory=list, description="Account ids or names.")
    regions: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict, description="Every tag must match (value '*' = any value).")
    production: bool | None = Field(default=None, description="Only production targets (True) or only non-production (False).")
    min_risk: RiskLevel | None = None


class UserContext(_Strict):
    user_id: str | None = Field(default=None, max_length=128)
    default_region: str | None = None
    aws_accounts: list[AwsAccount] = Field(default_factory=list, description="Objects, or bare 12-digit account ids.")
    deny_rules: list[DenyRule] = Field(default_factory=list)

    @field_validator("aws_accounts", mode="before")
    @classmethod
    def _bare_account_ids(cls, values: Any) -> Any:
        """The design writes accounts as ids (``["123456789012"]``): each becomes an account named by its id."""
        if not isinstance(values, list):
            return values
        return [{"account_id": v, "name": v} if isinstance(v, str) else v for v in values]


class PlanRequest(_Strict):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    identified_resources: list[IdentifiedResource] = Field(default_factory=list, max_length=MAX_RESOURCES)
    user_context: UserContext = Field(default_factory=UserContext)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt is blank")
        return value


class PlaybookScore(BaseModel):
    playbook: str
    score: float


class Classification(BaseModel):
    intent: str = Field(description="The verb: stop, start, reboot, snapshot, describe, ...")
    system: str = "aws"
    service: str | None = None
    operation: str | None = Field(default=None, description="API name of the main step, e.g. StopDBInstance.")
    confidence: float = Field(ge=0.0, le=1.0)
    playbook: str | None = None
    runner_up: list[PlaybookScore] = Field(default_factory=list)
    method: str = Field(default="rules+retrieval", description="What decided: rules+retrieval, or rules+retrieval+llm.")


class Step(BaseModel):
    step_id: str
    service: str
    operation: str
    parameters: dict[str, Any]
    account_id: str | None = None
    account_name: str | None = None
    region: str
    profile: str | None = None
    mutating: bool
    command: str = Field(description="The equivalent AWS CLI line.")
    argv: list[str] = Field(description="The same command as an argv list: what an executor runs, never a shell string.")
    description: str = ""
    targets: list[str] = Field(default_factory=list, description="resource_ids this step acts on")
    waiter: str | None = None
    denied_by: list[str] = Field(default_factory=list)
    access: str | None = Field(default=None, description="What the client's access-level table says of the "
                               "operation: read, write, permissions or tagging, +sensitive, +destructive.")


def plan_hash(steps: list[Step]) -> str:
    """What an approval is pinned to: every step's call, account, region and profile."""
    canonical = [
        {"service": s.service, "operation": s.operation, "parameters": s.parameters, "account_id": s.account_id,
         "region": s.region, "profile": s.profile}
        for s in steps
    ]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


class Script(BaseModel):
    steps: list[Step] = Field(default_factory=list)


class RiskAssessment(BaseModel):
    level: RiskLevel
    reasons: list[str] = Field(default_factory=list)
    impact: str = ""
    rollback: str | None = None
    denied: bool = False
    denied_reasons: list[str] = Field(default_factory=list)
    local_level: RiskLevel | None = Field(default=None, description="The client's own assessment.")
    remote_level: RiskLevel | None = Field(default=None, description="What the agent server said (server plans).")


class Candidate(BaseModel):
    kind: Literal["resource", "playbook", "operation"]
    label: str
    resource_id: str | None = None
    resource_type: str | None = None
    account_id: str | None = None
    account_name: str | None = None
    region: str | None = None
    playbook: str | None = None
    operation: str | None = Field(default=None, description="kind 'operation': a catalogue entry, service.Operation "
                                  "(an API call no reviewed playbook covers).")


class Clarification(BaseModel):
    question: str
    candidates: list[Candidate] = Field(default_factory=list)


class Confirmation(BaseModel):
    """What approving this plan takes beyond a click: the typed name of what it acts on (critical plans,
    changes to production), and an acknowledgement when the data it was planned on may be out of date."""

    phrase: str | None = Field(default=None, description="Type exactly this to approve (a target or account name).")
    reasons: list[str] = Field(default_factory=list)
    stale: str | None = Field(default=None, description="Why the data may be out of date; approving needs stale_ok.")


class Answer(BaseModel):
    """A question about the estate answered from the client's index ("is the bastion running?")."""

    text: str
    resources: list[str] = Field(default_factory=list, description="Names of the resources the answer is about.")
    as_of: datetime | None = Field(default=None, description="When the oldest of those resources was last synced.")


class PlanResponse(BaseModel):
    protocol: str = PROTOCOL_VERSION
    request_id: str
    served_by: Literal["server", "local"]
    classification: Classification
    identified_resources: list[IdentifiedResource]
    explain_plan: str
    script: Script
    risk_assessment: RiskAssessment
    approval_required: bool
    clarification: Clarification | None = None
    warnings: list[str] = Field(default_factory=list)
    playbook_version: str | None = None
    plan_hash: str | None = Field(default=None, description="sha256 over the steps: what an approval is pinned to.")
    confirmation: Confirmation | None = Field(default=None, description="Set by the client that checked the plan.")
    checked_by: Literal["client"] | None = Field(default=None, description="'client' once the client re-derived and "
                                                 "checked every step; an agent stack never sets it.")
    answer: Answer | None = None
    data_as_of: datetime | None = Field(default=None, description="When the oldest identified resource was last synced.")


class EmbedRequest(_Strict):
    """Stateless embedding for clients that do not run the model themselves (nothing is stored)."""

    texts: list[str] = Field(min_length=1, max_length=256)

    @field_validator("texts")
    @classmethod
    def _lengths(cls, values: list[str]) -> list[str]:
        if any(len(v) > 4000 for v in values):
            raise ValueError("each text must be at most 4000 characters")
        return values


class EmbedResponse(BaseModel):
    model: str
    dimension: int
    vectors: list[list[float]]


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    error: str
    details: list[ErrorDetail] = Field(default_factory=list)


def validation_details(exc) -> list[ErrorDetail]:
    """A pydantic ValidationError as (field, message) pairs: what a 422 body and the CLI both show."""
    return [ErrorDetail(field=".".join(str(p) for p in e["loc"]) or "(body)", message=e["msg"]) for e in exc.errors()]


def describe_validation(exc) -> str:
    return "; ".join(f"{d.field}: {d.message}" for d in validation_details(exc))


def json_schemas() -> dict[str, dict[str, Any]]:
    """The published JSON Schemas, keyed by file name."""
    return {
        "plan_request.schema.json": PlanRequest.model_json_schema(),
        "plan_response.schema.json": PlanResponse.model_json_schema(),
        "error.schema.json": ErrorResponse.model_json_schema(),
        "embed_request.schema.json": EmbedRequest.model_json_schema(),
        "embed_response.schema.json": EmbedResponse.model_json_schema(),
    }
