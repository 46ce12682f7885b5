"""The seed's own example, exactly as the product promises it."""

from agent.protocol import PlanRequest


def test_stop_pg_instance_main1_comes_out_as_in_the_seed(planner, seed_resource):
    plan = planner.plan(PlanRequest(prompt="Stop pg-instance-main1", identified_resources=[seed_resource]))

    assert plan.clarification is None
    assert plan.served_by == "server"
    assert plan.classification.playbook == "aws_rds_stop_instance"
    assert plan.classification.operation == "StopDBInstance"
    assert plan.classification.intent == "stop"
    assert plan.classification.service == "rds"
    assert [s.command for s in plan.script.steps] == [
        "aws rds stop-db-instance --db-instance-identifier pg-instance-main1 --region us-west-2"]
    step = plan.script.steps[0]
    assert step.parameters == {"DBInstanceIdentifier": "pg-instance-main1"}
    assert step.mutating and step.region == "us-west-2" and step.account_id == "111111111111"
    risk = plan.risk_assessment
    assert risk.level == "medium"
    reasons = " | ".join(risk.reasons).lower()
    assert "production database" in reasons
    assert "multi-az" in reasons
    assert "no read replicas" in reasons
    assert risk.impact
    assert plan.approval_required is True
    assert plan.plan_hash and len(plan.plan_hash) == 64


def test_the_profile_of_a_known_account_is_pinned_in_the_command(planner, seed_resource):
    plan = planner.plan(PlanRequest(
        prompt="Stop pg-instance-main1", identified_resources=[seed_resource],
        user_context={"aws_accounts": [{"account_id": "111111111111", "name": "production", "profile": "prod"}]}))
    assert plan.script.steps[0].command.endswith("--region us-west-2 --profile prod")
    assert plan.script.steps[0].argv[-2:] == ["--profile", "prod"]


def test_a_replica_bearing_instance_is_not_stopped(planner, seed_resource):
    seed_resource["relations"] = {"read_replicas": ["pg-instance-main1-replica"]}
    seed_resource["constraints"] = {"has_read_replicas": True}
    plan = planner.plan(PlanRequest(prompt="Stop pg-instance-main1", identified_resources=[seed_resource]))
    assert plan.script.steps == []
    assert plan.approval_required is False
    assert any("read replicas" in w for w in plan.warnings)
