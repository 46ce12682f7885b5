"""The demo estate in moto: reached through the AWS profiles, and exactly what the collectors find.

One moto server serves the module; tests that need a fresh estate reset it first (moto's state is
per process, so a second server would not be a clean slate anyway).
"""

from __future__ import annotations

import json
import os
from collections import Counter

import boto3
import pytest

from app.awsclient import AccountSession
from app.estate.collectors import COLLECTORS, GLOBAL_SERVICES
from app.demo.demo_estate import DEMO_ACCOUNTS, build_estate, reset_moto, start_moto, write_aws_config

PROD, STAGING = DEMO_ACCOUNTS[0], DEMO_ACCOUNTS[1]


@pytest.fixture(scope="module")
def moto_env(tmp_path_factory):
    server, endpoint = start_moto(port=0)
    env = write_aws_config(tmp_path_factory.mktemp("aws"), DEMO_ACCOUNTS, endpoint)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                mp.delenv(name, raising=False)
            for name, value in env.items():
                mp.setenv(name, value)
            mp.setattr("app.credentials.load", lambda account: None)  # never read a real keyring
            yield endpoint
    finally:
        reset_moto(endpoint)  # leave nothing behind for other modules' in-process moto
        server.stop()


@pytest.fixture(scope="module")
def estate(moto_env):
    reset_moto(moto_env)
    return build_estate()


def _client(account, service: str, region: str):
    return boto3.Session(profile_name=account.profile).client(service, region_name=region)


def _db(account, region: str, name: str) -> dict:
    return _client(account, "rds", region).describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]


def _tags(items: list[dict]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items}


def _collected(accounts) -> Counter:
    """Run every collector over every scope the way the sync engine does; count per (account, region, type)."""
    counts: Counter = Counter()
    for account in accounts:
        session = AccountSession(name=account.name, profile=account.profile, regions=list(account.regions))
        for service, fns in COLLECTORS.items():
            regions = account.regions[:1] if service in GLOBAL_SERVICES else account.regions
            for region in regions:
                for fn in fns:
                    for doc in fn(session, account.account_id, region):
                        counts[(account.name, doc.region, doc.resource_type)] += 1
    return counts


def test_profiles_assume_into_each_account(moto_env):
    for account in DEMO_ACCOUNTS:
        assert _client(account, "sts", account.regions[0]).get_caller_identity()["Account"] == account.account_id
    assert _client(STAGING, "sts", "us-west-2").get_caller_identity()["Account"] == "222222222222"


def test_seed_database_is_there_as_described(estate):
    db = _db(PROD, "us-west-2", "pg-instance-main1")
    assert db["Engine"] == "postgres" and db["DBInstanceClass"] == "db.r6g.xlarge"
    assert db["MultiAZ"] is True
    assert db["DBInstanceArn"] == "arn:aws:rds:us-west-2:111111111111:db:pg-instance-main1"
    assert db.get("ReadReplicaDBInstanceIdentifiers", []) == []
    assert _tags(db["TagList"]) == {"env": "production", "app": "main"}


def test_names_repeat_across_accounts_and_replicas_exist(estate):
    prod_orders, staging_orders = _db(PROD, "us-west-2", "orders-db"), _db(STAGING, "us-west-2", "orders-db")
    assert ":111111111111:" in prod_orders["DBInstanceArn"] and ":222222222222:" in staging_orders["DBInstanceArn"]
    assert prod_orders["ReadReplicaDBInstanceIdentifiers"] == ["orders-db-replica-1"]
    replica = _db(PROD, "us-west-2", "orders-db-replica-1")
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] in ("orders-db", prod_orders["DBInstanceArn"])
    assert _tags(staging_orders["TagList"])["env"] == "staging"

    for account in (PROD, STAGING):
        reservations = _client(account, "ec2", "us-west-2").describe_instances(
            Filters=[{"Name": "tag:Name", "Values": ["web-server-1"]}])["Reservations"]
        assert [i["InstanceId"] for r in reservations for i in r["Instances"]], account.name

    stopped = _client(PROD, "ec2", "us-west-2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["stopped"]}])["Reservations"]
    assert any(_tags(i["Tags"]).get("Name") == "web-server-3" for r in stopped for i in r["Instances"])
    assert _db(PROD, "us-east-1", "legacy-reports-db")["DBInstanceStatus"] == "stopped"


def test_summary_is_what_the_collectors_find(estate):
    """Every collected resource type is present, and the summary matches a sync to the resource."""
    assert estate.total > 80
    assert set(estate.by_type()) == {
        "rds_db_instance", "rds_db_cluster", "ec2_instance", "ec2_volume", "s3_bucket", "lambda_function",
        "dynamodb_table", "ecs_cluster", "ecs_service", "elbv2_load_balancer", "elbv2_target_group",
        "autoscaling_group", "sqs_queue", "sns_topic", "eks_cluster", "cloudformation_stack", "iam_role"}
    assert dict(_collected(DEMO_ACCOUNTS)) == estate.counts
    assert {a for a, _ in estate.by_scope()} == {"production", "staging", "dev"}
    assert all(estate.scope(a.name, "us-east-1") for a in DEMO_ACCOUNTS), "every account has us-east-1 resources"


def test_extra_per_scope_adds_that_many_per_scope(moto_env, estate):
    base = estate.by_scope()
    reset_moto(moto_env)
    bigger = build_estate(extra_per_scope=20, seed=11)
    assert bigger.total == estate.total + 20 * len(base)
    assert {scope: n - base[scope] for scope, n in bigger.by_scope().items()} == {scope: 20 for scope in base}
    assert dict(_collected(DEMO_ACCOUNTS)) == bigger.counts

    generated = _client(PROD, "sqs", "us-east-1").list_queues(QueueNamePrefix="")["QueueUrls"]
    assert any(url.rsplit("-", 1)[-1].isdigit() for url in generated), "generated queues end in a number"


def test_the_aws_cli_reaches_each_demo_account_again_after_moto_restarts(tmp_path):
    """The profiles `cloudops demo --serve` prints for the AWS CLI, used with two moto processes one after the
    other (two demo runs): the AWS CLI caches assumed-role keys by role and session name, so each run's profiles
    must name sessions of their own, or the second run's calls act in moto's default account with stale keys."""
    import shutil
    import socket
    import subprocess
    import time

    if shutil.which("aws") is None or shutil.which("moto_server") is None:
        pytest.skip("needs the AWS CLI and moto_server (pip install -e '.[test]')")
    home = tmp_path / "home"  # the AWS CLI's cache (~/.aws/cli/cache) of this test alone
    home.mkdir()
    for round_ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            env = write_aws_config(tmp_path / f"aws-{round_}", DEMO_ACCOUNTS, f"http://127.0.0.1:{port}")
            cli_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            cli_env.update(HOME=str(home), AWS_CONFIG_FILE=env["AWS_CONFIG_FILE"],
                           AWS_SHARED_CREDENTIALS_FILE=env["AWS_SHARED_CREDENTIALS_FILE"])
            out = subprocess.run(["aws", "sts", "get-caller-identity", "--profile", STAGING.profile, "--output", "json"],
                                 capture_output=True, text=True, timeout=120, env=cli_env)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["Account"] == STAGING.account_id, (round_, out.stdout)
        finally:
            server.terminate()
            server.wait(timeout=30)
