"""Executing approved plans on moto: the real planner's plan, approvals pinned to it, the audit trail,
stop at the first failure, deny rules, and the display-only dry run."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from agent.protocol import PlanRequest
from app import awsclient
from app.execution.approvals import ApprovalBook, ApprovalError
from app.execution.audit import AuditTrail
from app.execution.executor import Executor


@pytest.fixture
def aws(monkeypatch):
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        rds = boto3.client("rds", region_name="us-west-2")
        rds.create_db_instance(DBInstanceIdentifier="pg-instance-main1", DBInstanceClass="db.t3.micro", Engine="postgres",
                               MasterUsername="admin", MasterUserPassword="password123", AllocatedStorage=20,
                               MultiAZ=True, Tags=[{"Key": "env", "Value": "production"}])
        ec2 = boto3.client("ec2", region_name="us-west-2")
        image = ec2.describe_images()["Images"][0]["ImageId"]
        instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        yield {"rds": rds, "ec2": ec2, "instance": instance}


@pytest.fixture
def parts(tmp_path):
    approvals = ApprovalBook(tmp_path / "state.db")
    audit = AuditTrail(tmp_path / "audit.db")
    yield approvals, audit, Executor(approvals, audit, waiter_delay=0.05, waiter_attempts=40)
    approvals.close()
    audit.close()


def pg(state="available"):
    return {"resource_type": "rds_db_instance", "resource_id": "pg-instance-main1", "name": "pg-instance-main1",
            "account_id": "123456789012", "region": "us-west-2", "current_state": state, "engine": "postgres",
            "multi_az": True, "tags": {"env": "production"}, "relations": {"read_replicas": []}}


def plan_for(planner, prompt, resources, **context):
    return planner.plan(PlanRequest(prompt=prompt, identified_resources=resources, user_context=context))


def status(aws):
    return aws["rds"].describe_db_instances(DBInstanceIdentifier="pg-instance-main1")["DBInstances"][0]["DBInstanceStatus"]


def test_approved_plan_runs_waits_and_is_audited(aws, parts, planner):
    approvals, audit, executor = parts
    plan = plan_for(planner, "Stop pg-instance-main1", [pg()])
    approval = approvals.approve(plan)
    report = executor.run(plan, approval.approval_id)
    assert report.ok and report.steps[0].waited_for == "db_instance_stopped" and report.steps[0].aws_request_id
    assert status(aws) == "stopped"
    events = audit.events()
    assert events[0].kind == "step" and events[0].operation == "StopDBInstance" and events[0].outcome == "succeeded"
    assert '"DBInstanceIdentifier": "pg-instance-main1"' in events[0].parameters


def test_unapproved_used_expired_and_foreign_approvals_run_nothing(aws, parts, planner):
    approvals, audit, executor = parts
    plan = plan_for(planner, "Stop pg-instance-main1", [pg()])
    with pytest.raises(ApprovalError, match="not been approved"):
        executor.run(plan)
    other = plan_for(planner, "reboot pg-instance-main1", [pg()])
    with pytest.raises(ApprovalError, match="another plan"):
        executor.run(plan, approvals.approve(other).approval_id)
    old = approvals.approve(plan, now=datetime.now(timezone.utc) - timedelta(minutes=11))
    with pytest.raises(ApprovalError, match="expired"):
        executor.run(plan, old.approval_id)
    assert status(aws) == "available"  # nothing ran
    good = approvals.approve(plan)
    assert executor.run(plan, good.approval_id).ok
    with pytest.raises(ApprovalError, match="already used"):
        executor.run(plan, good.approval_id)
    assert [e.kind for e in audit.events()].count("refusal") == 4


def test_a_tampered_plan_cannot_be_approved_or_run(aws, parts, planner):
    approvals, _, executor = parts
    plan = plan_for(planner, "Stop pg-instance-main1", [pg()])
    approval = approvals.approve(plan)
    plan.script.steps[0].parameters["DBInstanceIdentifier"] = "someone-elses-db"
    with pytest.raises(ApprovalError):
        executor.run(plan, approval.approval_id)
    with pytest.raises(ApprovalError, match="do not match"):
        approvals.approve(plan)


def test_deny_rule_beats_approval(aws, parts, planner):
    approvals, audit, executor = parts
    plan = plan_for(planner, "Stop pg-instance-main1", [pg()],
                    deny_rules=[{"reason": "production is frozen", "production": True}])
    with pytest.raises(ApprovalError, match="frozen"):
        approvals.approve(plan)
    with pytest.raises(ApprovalError, match="frozen"):
        executor.run(plan, "anything")
    assert status(aws) == "available"


def test_failure_in_the_middle_stops_and_reports_the_state_left(aws, parts, planner, monkeypatch):
    approvals, audit, executor = parts
    plan = plan_for(planner, "snapshot pg-instance-main1 named before-stop, then stop it", [pg()])
    assert [s.operation for s in plan.script.steps] == ["CreateDBSnapshot", "StopDBInstance"]

    def refuse_stop(client, _account):
        def deny(**kwargs):
            raise_error = {"Error": {"Code": "InvalidDBInstanceState", "Message": "injected"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}
            from botocore.awsrequest import AWSResponse

            class Raw:
                def stream(self, **k):
                    yield b""

            return AWSResponse("https://rds", 400, {}, Raw()), raise_error

        client.meta.events.register("before-call.rds.StopDBInstance", deny)

    monkeypatch.setattr(awsclient, "CLIENT_HOOKS", [refuse_stop])
    report = executor.run(plan, approvals.approve(plan).approval_id)
    assert [s.status for s in report.steps] == ["succeeded", "failed"]
    assert "InvalidDBInstanceState" in report.steps[1].error
    assert "step-1 CreateDBSnapshot" in report.state_left and "failed" in report.state_left
    assert aws["rds"].describe_db_snapshots(DBSnapshotIdentifier="before-stop")["DBSnapshots"]
    assert status(aws) == "available"


def test_dry_run_asks_aws_without_changing_anything(aws, parts, planner):
    _, _, executor = parts
    instance = {"resource_type": "ec2_instance", "resource_id": aws["instance"], "name": "web-1",
                "account_id": "123456789012", "region": "us-west-2", "current_state": "running"}
    plan = plan_for(planner, "stop web-1", [instance])
    assert executor.dry_run(plan) == {"step-1": "would succeed"}
    state = aws["ec2"].describe_instances(InstanceIds=[aws["instance"]])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "running"
    rds_plan = plan_for(planner, "Stop pg-instance-main1", [pg()])
    assert executor.dry_run(rds_plan) == {"step-1": "no dry run for this API"}


def test_the_audit_trail_is_append_only(tmp_path):
    audit = AuditTrail(tmp_path / "audit.db")
    audit.record("plan", prompt="Stop pg-instance-main1", plan_hash="x")
    audit.close()
    conn = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET prompt = 'rewritten'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")
    assert conn.execute("SELECT count(*) FROM audit").fetchone() == (1,)
