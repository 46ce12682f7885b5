"""`cloudops sync`, `plan`, `run` and `audit` as subprocesses against moto on loopback: the operator's
path from a prompt to a changed resource, and the refusals on the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest

from app.config import AccountConfig, Config, save_config
from conftest import ROOT

CLI = [sys.executable, "-m", "app.cli"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from app.demo_estate import DEMO_ACCOUNTS, build_estate, reset_moto, start_moto, write_aws_config

    home = tmp_path_factory.mktemp("home")
    server, endpoint = start_moto()
    saved = dict(os.environ)
    try:
        reset_moto(endpoint)
        env = write_aws_config(tmp_path_factory.mktemp("aws"), DEMO_ACCOUNTS, endpoint)
        os.environ.update(env)
        build_estate(DEMO_ACCOUNTS)
        os.environ["CLOUDOPS_HOME"] = str(home)
        save_config(Config(accounts=[AccountConfig(name=a.name, profile=a.profile, regions=a.regions)
                                     for a in DEMO_ACCOUNTS]), home / "config.yaml")
        yield {"env": {**saved, **env, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1"}}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def cli(demo, *args, timeout=300):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout, env=demo["env"],
                          cwd=ROOT, stdin=subprocess.DEVNULL)


def pg_status():
    rds = boto3.Session(profile_name="prod").client("rds", region_name="us-west-2")
    return rds.describe_db_instances(DBInstanceIdentifier="pg-instance-main1")["DBInstances"][0]["DBInstanceStatus"]


def test_sync_plan_run_audit(demo):
    out = cli(demo, "sync", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["errors"] == [] and report["added"] > 80 and report["embedded"] == report["added"]

    plan = json.loads(cli(demo, "plan", "Stop pg-instance-main1", "--json").stdout)
    assert plan["script"]["steps"][0]["command"] == \
        "aws rds stop-db-instance --db-instance-identifier pg-instance-main1 --region us-west-2 --profile prod"

    refused = cli(demo, "run", "Stop pg-instance-main1", "--json")  # no terminal, no --approve
    assert refused.returncode == 3 and json.loads(refused.stdout)["executed"] is False
    assert pg_status() == "available"

    asked = cli(demo, "run", "delete orders-db", "--approve", "--json")  # same name in two accounts
    assert asked.returncode == 3 and json.loads(asked.stdout)["plan"]["clarification"]

    done = cli(demo, "run", "Stop pg-instance-main1", "--approve", "--json")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["ok"] and result["steps"][0]["status"] == "succeeded"
    assert pg_status() == "stopped"

    events = json.loads(cli(demo, "audit", "--json").stdout)
    kinds = [e["kind"] for e in events]
    assert {"plan", "denial", "approval", "step"} <= set(kinds)
    step = next(e for e in events if e["kind"] == "step")
    assert step["operation"] == "StopDBInstance" and step["outcome"] == "succeeded" and step["account_id"] == "111111111111"
