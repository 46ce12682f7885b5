"""Permissions derived from the caller's IAM policies (moto), and 'unknown' when they cannot be read."""

from __future__ import annotations

import json

import boto3
from moto import mock_aws

from app.awsclient import AccountSession
from app.estate.permissions import CallerPolicies, parse_document, read_caller_policies

ARN = "arn:aws:ec2:us-east-1:111111111111:instance/i-1"


def test_deny_beats_allow_and_conditions_do_not_allow():
    statements = parse_document({"Statement": [
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "arn:aws:ec2:*:*:instance/*"},
        {"Effect": "Allow", "Action": "ec2:CreateImage", "Resource": "*", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}},
    ]})
    result = CallerPolicies("role/x", statements).evaluate("ec2_instance", ARN)
    assert "ec2:TerminateInstances" in result["denied"] and "ec2:StopInstances" in result["allowed"]
    assert "ec2:TerminateInstances" not in result["allowed"]
    statements = parse_document({"Statement": {"Effect": "Allow", "Action": ["ec2:StartInstances"],
                                               "Resource": "arn:aws:ec2:*:*:instance/i-2"}})
    assert CallerPolicies("role/x", statements).evaluate("ec2_instance", ARN)["allowed"] == []
    assert CallerPolicies(unknown_reason="nope").evaluate("ec2_instance", ARN)["status"] == "unknown"


def test_read_from_an_assumed_role_and_unknown_without_one(tmp_path, monkeypatch):
    creds = tmp_path / "credentials"
    creds.write_text("[base]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    config = tmp_path / "config"
    config.write_text("[profile base]\nregion = us-east-1\n[profile ops]\nrole_arn = arn:aws:iam::111111111111:role/ops\n"
                      "source_profile = base\n[profile other]\nrole_arn = arn:aws:iam::222222222222:role/missing\n"
                      "source_profile = base\n")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    with mock_aws():
        # the role lives in account 111111111111: create it there, with an inline and a managed policy
        iam = boto3.Session(profile_name="ops").client("iam", region_name="us-east-1")
        iam.create_role(RoleName="ops", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
        iam.put_role_policy(RoleName="ops", PolicyName="inline", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "rds:DeleteDBInstance", "Resource": "*"}]}))
        managed = iam.create_policy(PolicyName="rds-ops", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rds:*", "Resource": "*"}]}))["Policy"]["Arn"]
        iam.attach_role_policy(RoleName="ops", PolicyArn=managed)

        policies = read_caller_policies(AccountSession("production", "ops", ["us-east-1"]), "us-east-1")
        assert policies.principal == "role/ops"
        result = policies.evaluate("rds_db_instance", "arn:aws:rds:us-east-1:111111111111:db:pg")
        assert result["denied"] == ["rds:DeleteDBInstance"] and "rds:StopDBInstance" in result["allowed"]
        unknown = read_caller_policies(AccountSession("staging", "other", ["us-east-1"]), "us-east-1")
        assert unknown.evaluate("rds_db_instance", "arn:aws:rds:us-east-1:222222222222:db:pg")["status"] == "unknown"


def test_a_user_gets_its_own_and_its_groups_policies(monkeypatch):
    for var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="ops-user")
        iam.put_user_policy(UserName="ops-user", PolicyName="own", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:PurgeQueue", "Resource": "*"}]}))
        iam.create_group(GroupName="readers")
        iam.add_user_to_group(GroupName="readers", UserName="ops-user")
        iam.put_group_policy(GroupName="readers", PolicyName="read", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:Get*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="ops-user")["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        policies = read_caller_policies(AccountSession("default", None, ["us-east-1"]), "us-east-1")
        assert policies.principal == "user/ops-user", policies.unknown_reason
        result = policies.evaluate("sqs_queue", "arn:aws:sqs:us-east-1:123456789012:q")
        assert result["allowed"] == ["sqs:PurgeQueue", "sqs:GetQueueAttributes"] and result["denied"] == []
