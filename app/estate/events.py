"""Event-driven sync: AWS resource-change events (EventBridge rules delivering to an SQS queue) name
the scopes to refresh now, instead of waiting for the next incremental sync.

An event only says *where* to look (source service, account, region); the scope is then listed like
any other, so a forged or garbled event can at worst cause an extra listing, never a wrong document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.estate.collectors import COLLECTORS, GLOBAL_SERVICES

if TYPE_CHECKING:
    from app.awsclient import SessionPool
    from app.config import Config

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


class EventsUnavailable(ValueError):
    """config.yaml names no events queue, or names an account it does not configure (one sentence)."""


def queue_region(queue_url: str) -> str | None:
    """The region of an SQS queue URL (``https://sqs.eu-west-1.amazonaws.com/...``); None for other hosts
    (moto, a VPC endpoint), where the owner account's first region is used."""
    host = queue_url.split("//", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    return parts[1] if host.endswith(".amazonaws.com") and len(parts) > 3 else None


def drain_configured(config: "Config", sessions: "SessionPool") -> set[ScopeRef]:
    """Drain the events queue config.yaml names (``events: {queue_url, account}``) with that account's
    session from ``sessions`` (the one the sync uses); the scopes the events point at."""
    events = config.events
    if events is None:
        raise EventsUnavailable("no events queue configured (config.yaml: events: {queue_url: ..., account: NAME})")
    account = next((a for a in config.effective_accounts() if a.name == events.account), None)
    if account is None:
        raise EventsUnavailable(f"events.account {events.account!r} in config.yaml is not a configured account; "
                                "name one of `cloudops accounts list`")
    owner = sessions.get(account.name, account.profile, list(account.regions), account.account_id)
    client = owner.client("sqs", queue_region(events.queue_url) or owner.regions[0])
    return drain(client, events.queue_url, default_account=owner.resolve_account_id())
