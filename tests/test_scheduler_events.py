"""Schedules decided from a given clock, and resource-change events turned into scopes to sync."""

import json
from datetime import datetime, timedelta, timezone

import boto3
from moto import mock_aws

from app.config import Schedules
from app.estate.events import ScopeRef, drain, scopes_from_event
from app.estate.scheduler import SyncScheduler

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_full_then_incremental_then_full_again():
    s = SyncScheduler(Schedules(full_every_s=3600, incremental_every_s=600))
    assert s.due(T0) == "full"
    s.ran("full", T0)
    assert s.due(T0 + timedelta(seconds=599)) is None
    assert s.due(T0 + timedelta(seconds=600)) == "incremental"
    s.ran("incremental", T0 + timedelta(seconds=600))
    assert s.due(T0 + timedelta(seconds=900)) is None
    assert s.due(T0 + timedelta(seconds=3600)) == "full"


def test_events_name_scopes_and_garbage_is_ignored():
    event = {"source": "aws.ec2", "account": "111111111111", "region": "us-west-2",
             "detail-type": "EC2 Instance State-change Notification", "detail": {"state": "stopped"}}
    assert scopes_from_event(event) == {ScopeRef("111111111111", "us-west-2", "ec2")}
    tag = {"source": "aws.tag", "account": "111111111111", "region": "us-east-1", "detail": {"service": "s3"}}
    assert scopes_from_event(tag) == {ScopeRef("111111111111", "global", "s3")}
    assert scopes_from_event({"source": "evil", "account": "1", "region": "x"}) == set()
    assert scopes_from_event({"source": "aws.ec2", "account": "not-digits", "region": "x"}) == set()


@mock_aws
def test_eventbridge_to_sqs_round_trip(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sqs = boto3.client("sqs", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    url = sqs.create_queue(QueueName="cloudops-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="resource-changes", EventPattern=json.dumps({"source": ["aws.ec2", "aws.rds"]}))
    events.put_targets(Rule="resource-changes", Targets=[{"Id": "q", "Arn": arn}])
    events.put_events(Entries=[
        {"Source": "aws.rds", "DetailType": "RDS DB Instance Event", "Detail": json.dumps({"x": 1})},
        {"Source": "aws.ec2", "DetailType": "EC2 Instance State-change Notification", "Detail": json.dumps({"s": 1})},
    ])
    sqs.send_message(QueueUrl=url, MessageBody="not json at all")
    scopes = drain(sqs, url, default_account="123456789012")
    assert {s.service for s in scopes} == {"ec2", "rds"}
    assert all(s.region == "us-east-1" and s.account_id == "123456789012" for s in scopes)
    assert drain(sqs, url) == set()  # consumed
