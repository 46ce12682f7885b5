"""Event-driven sync: AWS resource-change events (EventBridge rules delivering to an SQS queue) name
the scopes to refresh now, instead of waiting for the next incremental sync.

An event only says *where* to look (source service, account, region); the scope is then listed like
any other, so a forged or garbled event can at worst cause an extra listing, never a wrong document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.estate.collectors import COLLECTORS, GLOBAL_SERVICES

# EventBridge "source" -> our service name
_SOURCES = {"aws.ec2": "ec2", "aws.rds": "rds", "aws.s3": "s3", "aws.lambda": "lambda", "aws.dynamodb": "dynamodb",
            "aws.ecs": "ecs", "aws.elasticloadbalancing": "elbv2", "aws.autoscaling": "autoscaling",
            "aws.sqs": "sqs", "aws.sns": "sns", "aws.eks": "eks", "aws.cloudformation": "cloudformation",
            "aws.iam": "iam", "aws.tag": None}


@dataclass(frozen=True)
class ScopeRef:
    account_id: str
    region: str
    service: str


def scopes_from_event(event: dict, default_account: str | None = None) -> set[ScopeRef]:
    """The scope an event points at. ``default_account`` (the queue owner's) stands in when the
    event carries no account (moto omits it; AWS always sends it)."""
    source = event.get("source")
    account_id = str(event.get("account") or default_account or "")
    region = str(event.get("region", ""))
    if source not in _SOURCES or not account_id.isdigit():
        return set()
    service = _SOURCES[source]
    if service is None:  # tag change events name the resource's service in detail.service
        service = str((event.get("detail") or {}).get("service", "")).lower()
    if service not in COLLECTORS:
        return set()
    return {ScopeRef(account_id, "global" if service in GLOBAL_SERVICES else region, service)}


def drain(sqs_client, queue_url: str, max_messages: int = 100, default_account: str | None = None) -> set[ScopeRef]:
    """Read (and delete) up to ``max_messages`` events from the queue; the scopes they touch."""
    scopes: set[ScopeRef] = set()
    read = 0
    while read < max_messages:
        reply = sqs_client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:
            read += 1
            try:
                scopes |= scopes_from_event(json.loads(message["Body"]), default_account)
            except (json.JSONDecodeError, TypeError, AttributeError):
                pass  # not an event: drop it
        sqs_client.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    return scopes
