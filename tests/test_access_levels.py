"""The access-level table shipped with the client (agent/data/access_levels.json): every operation of
every service it covers, in the installed botocore, has an entry; the entries are what the reviewed rules
give; the levels that matter for approval are right."""

from __future__ import annotations

import json

import botocore.session
import pytest

from agent.access_levels import SERVICES, TABLE_PATH, UNKNOWN, access, build_table


def test_every_operation_of_every_supported_service_has_an_entry():
    table = json.loads(TABLE_PATH.read_text())
    session = botocore.session.get_session()
    for service in SERVICES:
        operations = set(session.get_service_model(service).operation_names)
        assert operations == set(table[service]), f"{service}: run python -m agent.access_levels --write"
    assert sum(len(ops) for ops in table.values()) > 1900


def test_the_table_is_what_the_reviewed_rules_give():
    assert json.loads(TABLE_PATH.read_text()) == build_table(), "regenerate: python -m agent.access_levels --write"


@pytest.mark.parametrize("service, operation, level, approval", [
    ("rds", "DescribeDBInstances", "read", False), ("rds", "StopDBInstance", "write", True),
    ("ec2", "DescribeInstances", "read", False), ("s3", "ListObjectsV2", "read", False),
    ("secretsmanager", "GetSecretValue", "read", True), ("ssm", "GetParameters", "read", True),
    ("sts", "AssumeRole", "write", True), ("sts", "GetSessionToken", "read", True),
    ("sts", "GetCallerIdentity", "read", False), ("iam", "CreateAccessKey", "permissions", True),
    ("kms", "Decrypt", "read", True), ("lambda", "GetFunction", "read", True),
    ("lambda", "GetFunctionConfiguration", "read", False), ("s3", "GetObject", "read", True),
    ("s3", "PutBucketPolicy", "permissions", True), ("iam", "AttachRolePolicy", "permissions", True),
    ("ec2", "AuthorizeSecurityGroupIngress", "permissions", True), ("rds", "AddTagsToResource", "tagging", True),
    ("lambda", "TagResource", "tagging", True), ("sqs", "ReceiveMessage", "read", True),
    ("dynamodb", "ExecuteStatement", "write", True), ("dynamodb", "Scan", "read", True),
])
def test_levels_that_decide_approval(service, operation, level, approval):
    found = access(service, operation)
    assert (found.level, found.needs_approval) == (level, approval)


@pytest.mark.parametrize("service, operation", [("ec2", "TerminateInstances"), ("rds", "DeleteDBInstance"),
                                                ("sqs", "PurgeQueue"), ("s3", "DeleteBucket")])
def test_deletions_and_terminations_are_destructive(service, operation):
    assert access(service, operation).destructive


def test_an_operation_the_table_does_not_know_fails_closed():
    assert access("route53", "DeleteHostedZone") is UNKNOWN and UNKNOWN.needs_approval and UNKNOWN.mutating
    assert access("rds", "StopEverything") is UNKNOWN
