"""`cloudops sync`, `plan`, `run` and `audit` as subprocesses against moto on loopback: the operator's
path from a prompt to a changed resource, and the refusals on the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from app.config import AccountConfig, Config, save_config
from conftest import ROOT, wait_for_endpoint

CLI = [sys.executable, "-m", "app.interfaces.cli"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from app.demo.demo_estate import DEMO_ACCOUNTS, simulated_estate

    home = tmp_path_factory.mktemp("home")
    with simulated_estate():
        os.environ["CLOUDOPS_HOME"] = str(home)
        save_config(Config(accounts=[AccountConfig(name=a.name, profile=a.profile, regions=a.regions)
                                     for a in DEMO_ACCOUNTS]), home / "config.yaml")
        yield {"env": {**os.environ, "HF_HUB_OFFLINE": "1"}}


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

    untyped = cli(demo, "run", "Stop pg-instance-main1", "--approve", "--json")  # production: the name must be typed
    assert untyped.returncode == 3 and "pg-instance-main1" in json.loads(untyped.stdout)["why_not_run"]
    assert pg_status() == "available"
    done = cli(demo, "run", "Stop pg-instance-main1", "--approve", "--confirm", "pg-instance-main1", "--json")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["ok"] and result["steps"][0]["status"] == "succeeded"
    assert pg_status() == "stopped"

    rebooted = cli(demo, "run", "reboot web-server-2 in production", "--approve", "--confirm", "web-server-2", "--json")
    assert rebooted.returncode == 0, rebooted.stderr[-2000:]
    assert json.loads(rebooted.stdout)["dry_run"] == {"step-1": "would succeed"}  # EC2 has DryRun: asked first

    events = json.loads(cli(demo, "audit", "--json").stdout)
    kinds = [e["kind"] for e in events]
    assert {"plan", "denial", "approval", "step"} <= set(kinds)
    step = next(e for e in events if e["kind"] == "step" and e["operation"] == "StopDBInstance")
    assert step["operation"] == "StopDBInstance" and step["outcome"] == "succeeded" and step["account_id"] == "111111111111"


def _start_app(demo, **env):
    home = demo["env"]["CLOUDOPS_HOME"]
    endpoint_file = os.path.join(home, "endpoint.json")
    if os.path.exists(endpoint_file):
        os.unlink(endpoint_file)
    proc = subprocess.Popen(CLI + ["app", "--headless"], env={**demo["env"], **env}, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(home, "app.log"), "w"))
    return proc, wait_for_endpoint(Path(home), proc, timeout=60)


def test_cli_goes_through_the_running_app(demo):
    """While the app runs it owns the index: sync, search and run go through its endpoint, and a process
    that opens the index anyway gets one clear sentence, never Qdrant's lock error."""
    import httpx

    app, info = _start_app(demo)
    try:
        sqs = boto3.Session(profile_name="dev").client("sqs", region_name="us-east-1")
        sqs.create_queue(QueueName="through-the-app")  # something to write, so the app opens the index
        synced = cli(demo, "sync", "--json", "--account", "dev", "--service", "sqs")
        assert synced.returncode == 0, synced.stderr[-2000:]
        assert json.loads(synced.stdout)["added"] == 1

        bypass = subprocess.run(CLI + ["sync", "--account", "dev", "--service", "sqs"], capture_output=True,
                                text=True, timeout=300, env={**demo["env"], "CLOUDOPS_NO_APP": "1"}, cwd=ROOT)
        assert bypass.returncode == 2 and "open in another CloudOps process" in bypass.stderr
        assert "Traceback" not in bypass.stderr and "portalocker" not in bypass.stderr

        second = cli(demo, "app", "--headless", timeout=60)
        assert second.returncode == 1 and "already running" in second.stderr

        found = json.loads(cli(demo, "search", "through-the-app", "--json", "--limit", "1").stdout)
        assert found[0]["name"] == "through-the-app" and found[0]["account_name"] == "dev"

        started = cli(demo, "run", "Start pg-instance-main1", "--approve", "--confirm", "pg-instance-main1", "--json")
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        result = json.loads(started.stdout)
        assert result.get("ok"), json.dumps(result)[-3000:]
        assert pg_status() == "available"
        # The app planned it: the plan lives in the app's memory, under the id the CLI printed.
        known = httpx.get(f"{info['url']}/v1/plans/{result['plan']['request_id']}",
                          headers={"Authorization": f"Bearer {info['token']}"}, timeout=10)
        assert known.status_code == 200
    finally:
        app.terminate()
        app.wait(timeout=30)
    assert not os.path.exists(os.path.join(demo["env"]["CLOUDOPS_HOME"], "endpoint.json"))

    # A stale endpoint.json (its process gone) is ignored: the CLI opens the index itself.
    stale = os.path.join(demo["env"]["CLOUDOPS_HOME"], "endpoint.json")
    with open(stale, "w") as handle:
        json.dump({"url": info["url"], "token": info["token"], "pid": app.pid}, handle)
    alone = cli(demo, "search", "through-the-app", "--json", "--limit", "1")
    assert alone.returncode == 0 and json.loads(alone.stdout)[0]["name"] == "through-the-app"
    os.unlink(stale)


def test_endpoint_workflow_failure_in_the_middle_and_expiry(demo):
    """Through the real endpoint: a two-step workflow whose second step AWS refuses (someone stopped the
    database between plan and run) reports what ran, what failed and the state left; an approval used
    after it expired runs nothing."""
    import time

    import httpx

    app, info = _start_app(demo, CLOUDOPS_APPROVAL_TTL_S="2")
    try:
        with httpx.Client(base_url=info["url"], headers={"Authorization": f"Bearer {info['token']}"},
                          timeout=120) as client:
            if pg_status() != "available":
                boto3.Session(profile_name="prod").client("rds", region_name="us-west-2").start_db_instance(
                    DBInstanceIdentifier="pg-instance-main1")
                assert client.post("/v1/sync", json={"account": "production", "service": "rds"}).status_code == 200
            plan = client.post("/v1/plan", json={"prompt": "snapshot pg-instance-main1 named mid-run, then stop it"}).json()
            assert [s["operation"] for s in plan["script"]["steps"]] == ["CreateDBSnapshot", "StopDBInstance"]
            boto3.Session(profile_name="prod").client("rds", region_name="us-west-2").stop_db_instance(
                DBInstanceIdentifier="pg-instance-main1")  # the world changed after the plan was made
            approval = client.post("/v1/approve", json={"request_id": plan["request_id"],
                                                       "confirm": plan["confirmation"]["phrase"]}).json()
            report = client.post("/v1/execute", json={"request_id": plan["request_id"],
                                                      "approval_id": approval["approval_id"]}).json()
            assert [s["status"] for s in report["steps"]] == ["succeeded", "failed"], report
            assert not report["ok"] and "step-1 CreateDBSnapshot" in report["state_left"]
            assert "failed" in report["state_left"]

            plan = client.post("/v1/plan", json={"prompt": "start pg-instance-main1"}).json()
            approval = client.post("/v1/approve", json={"request_id": plan["request_id"],
                                                       "confirm": plan["confirmation"]["phrase"]}).json()
            time.sleep(3)
            late = client.post("/v1/execute", json={"request_id": plan["request_id"],
                                                    "approval_id": approval["approval_id"]})
            assert late.status_code == 403 and "expired" in late.json()["error"]
            assert pg_status() == "stopped"
            kinds = [(e["kind"], e["outcome"]) for e in client.get("/v1/audit", params={"limit": 50}).json()]
            assert ("step", "failed") in kinds and ("step", "succeeded") in kinds
    finally:
        app.terminate()
        app.wait(timeout=30)


def test_no_key_in_any_output_or_log_of_a_full_run(demo):
    """Everything the CLI prints (stdout, stderr: where its logs go) over sync, search, plan, run, audit and
    status, including a failing step: no access key id, secret or session token."""
    import re

    from app.demo.demo_estate import _TEST_KEYS

    outputs = [cli(demo, *args) for args in (["sync", "--json", "--full"], ["search", "pg-main", "--json"],
                                             ["plan", "reboot web-server-2 in production", "--json"],
                                             ["run", "reboot web-server-2 in production", "--approve", "--confirm",
                                              "web-server-2", "--json"],
                                             ["run", "stop pg-instance-main1", "--approve", "--confirm",
                                              "pg-instance-main1", "--json"],
                                             ["status", "--json"], ["audit", "--json", "--limit", "500"])]
    text = "\n".join(o.stdout + o.stderr for o in outputs)
    assert all(o.returncode in (0, 1, 2, 3) for o in outputs) and "Traceback" not in text
    assert _TEST_KEYS[0] not in text and _TEST_KEYS[1] not in text
    assert not re.search(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", text)
    assert "aws_secret_access_key" not in text.lower() and "sessiontoken" not in text.lower()
