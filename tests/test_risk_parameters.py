"""Risk that reads the call's own values (issue 13 item 4): rules and preconditions on param.<Member> and on
facts, checked by the playbook loader, applied by the planner and again by the client's own check."""

from __future__ import annotations

import pytest

from agent import aws_models
from agent.playbook import PlaybookError, parse_playbook
from agent.protocol import PlanRequest, plan_hash
from conftest import PLAYBOOKS

ACCOUNT = {"account_id": "111111111111", "name": "production", "profile": "prod", "regions": ["us-east-1"]}


def plan(planner, prompt, resources):
    return planner.plan(PlanRequest(prompt=prompt, identified_resources=resources,
                                    user_context={"aws_accounts": [ACCOUNT]}))


def res(rtype, rid, attributes=None, env="production", **kw):
    return {"resource_type": rtype, "resource_id": rid, "name": kw.pop("name", rid), "account_id": "111111111111",
            "account_name": "production", "region": "us-east-1", "tags": {"env": env},
            "attributes": attributes or {}, **kw}


def asg(min_size, desired, max_size=10, env="production"):
    return res("autoscaling_group", "web-asg", {"min_size": min_size, "desired_capacity": desired, "max_size": max_size},
               env=env, arn="arn:aws:autoscaling:us-east-1:111111111111:autoScalingGroup:1:autoScalingGroupName/web-asg")


@pytest.mark.parametrize("when, field, says", [
    ("{param.Nope: 0}", "risk.rules[0].when.param.Nope", "no step of this playbook sends that member"),
    ("{param.DesiredCapacity: {below: 1}}", "risk.rules.0.when", "a comparison is one of eq, ge, gt, le, lt, ne"),
    ("{param.DesiredCapacity: {lt: fact.nope}}", "risk.rules.0.when", "unknown fact 'fact.nope'"),
    ("{param.desired-capacity: 0}", "risk.rules.0.when", "param. takes an API member name"),
])
def test_the_loader_refuses_a_bad_value_rule_naming_file_and_field(tmp_path, when, field, says):
    text = (PLAYBOOKS / "aws_autoscaling_set_desired_capacity.yaml").read_text()
    text = text.replace("  rules:\n", f"  rules:\n    - when: {when}\n      level: high\n      reason: x\n", 1)
    path = tmp_path / "aws_autoscaling_set_desired_capacity.yaml"
    with pytest.raises(PlaybookError) as err:
        parse_playbook(text, path)
    assert err.value.field.replace("[0]", ".0").startswith(field.replace("[0]", ".0")) or err.value.field == field, err.value
    assert says in err.value.message and str(path) in str(err.value)


def test_scaling_a_production_group_to_zero_is_high_risk_with_the_reason(planner):
    p = plan(planner, "scale web-asg to 0", [asg(min_size=0, desired=4)])
    assert p.script.steps[0].parameters["DesiredCapacity"] == 0
    assert p.risk_assessment.level == "high"
    assert "desired capacity 0 on a production group: every instance is terminated" in p.risk_assessment.reasons
    assert any("from 4 to 0 instances" in r for r in p.risk_assessment.reasons)
    calm = plan(planner, "scale web-asg to 6", [asg(min_size=0, desired=4)])
    assert calm.risk_assessment.level == "medium"


def test_below_the_groups_minimum_says_aws_refuses_it_and_is_high_risk(planner):
    p = plan(planner, "scale web-asg to 1", [asg(min_size=2, desired=4, env="staging")])
    assert p.script.steps[0].parameters["DesiredCapacity"] == 1 and p.risk_assessment.level == "high"
    assert any("below web-asg's minimum size 2" in w and "AWS refuses it" in w for w in p.warnings)
    assert any("below the group's minimum size 2" in r for r in p.risk_assessment.reasons)


def test_reserved_concurrency_zero_is_high_risk(planner):
    fn = res("lambda_function", "image-resizer", arn="arn:aws:lambda:us-east-1:111111111111:function:image-resizer")
    p = plan(planner, "set reserved concurrency of image-resizer to 0", [fn])
    assert p.script.steps[0].parameters["ReservedConcurrentExecutions"] == 0 and p.risk_assessment.level == "high"
    assert any("throttles every invocation" in r for r in p.risk_assessment.reasons)


def test_apply_immediately_on_production_is_high_risk(planner):
    db = res("rds_db_instance", "pg-instance-main1", current_state="available", multi_az=True,
             arn="arn:aws:rds:us-east-1:111111111111:db:pg-instance-main1")
    later = plan(planner, "resize pg-instance-main1 to db.r6g.large", [db])
    now = plan(planner, "resize pg-instance-main1 to db.r6g.large immediately", [db])
    assert now.script.steps[0].parameters["ApplyImmediately"] is True
    assert now.risk_assessment.level == "high" and later.risk_assessment.level == "medium"
    assert any(r.startswith("ApplyImmediately on production") for r in now.risk_assessment.reasons)


def test_a_purge_with_messages_in_flight_says_how_many(planner):
    url = "https://sqs.us-east-1.amazonaws.com/111111111111/orders-queue"
    queue = res("sqs_queue", url, {"queue_url": url, "approximate_messages": 12,
                                   "approximate_messages_not_visible": 3}, name="orders-queue", env="staging",
                arn="arn:aws:sqs:us-east-1:111111111111:orders-queue")
    p = plan(planner, "purge orders-queue", [queue])
    reasons = p.risk_assessment.reasons
    assert p.risk_assessment.level in ("high", "critical")
    assert any(r.startswith("3 messages in flight") for r in reasons) and any(r.startswith("12 messages waiting")
                                                                              for r in reasons)


def _tampered(planner, prompt, resources, **changes):
    """The honest plan with one step's values changed as a server might send them (argv re-rendered, so only
    the values differ)."""
    p = plan(planner, prompt, resources)
    step = p.script.steps[0]
    params = {**step.parameters, **changes}
    params = {k: v for k, v in params.items() if v is not None}
    argv = aws_models.render_cli(step.service, step.operation, params, step.region, step.profile)
    steps = [step.model_copy(update={"parameters": params, "argv": argv, "command": aws_models.command_line(argv)})]
    return p.model_copy(update={"served_by": "server", "script": p.script.model_copy(update={"steps": steps}),
                                "plan_hash": plan_hash(steps)})


def test_the_clients_own_check_reads_the_values_of_a_servers_plan(planner):
    """A server that sends SkipFinalSnapshot under the reviewed delete playbook and calls it "high": the client's
    re-assessment reads the value and says critical, with the reason."""
    from app.execution.verify import TrustContext, verify_plan

    db = res("rds_db_instance", "pg-instance-main1", current_state="available",
             arn="arn:aws:rds:us-east-1:111111111111:db:pg-instance-main1")
    tampered = _tampered(planner, "delete pg-instance-main1", [db], SkipFinalSnapshot=True,
                         FinalDBSnapshotIdentifier=None)
    from agent.playbook import load_playbooks

    playbooks = {lp.playbook.id: lp.playbook for lp in load_playbooks(PLAYBOOKS)}
    trust = TrustContext(resources=[PlanRequest(prompt="x", identified_resources=[db]).identified_resources[0]],
                         accounts=PlanRequest(prompt="x", user_context={"aws_accounts": [ACCOUNT]}
                                              ).user_context.aws_accounts, playbooks=playbooks,
                         prompt="delete pg-instance-main1")
    checked = verify_plan(tampered, trust)
    assert checked.risk_assessment.local_level == "critical"
    assert any(r.startswith("SkipFinalSnapshot") for r in checked.risk_assessment.reasons)


def test_an_image_taken_with_a_reboot_says_so(planner):
    from app.execution.verify import TrustContext, verify_plan

    vm = res("ec2_instance", "i-0123456789abcdef0", name="web-server-2", current_state="running")
    tampered = _tampered(planner, "create an image of web-server-2", [vm], NoReboot=False)
    req = PlanRequest(prompt="create an image of web-server-2", identified_resources=[vm],
                      user_context={"aws_accounts": [ACCOUNT]})
    checked = verify_plan(tampered, TrustContext(resources=req.identified_resources,
                                                 accounts=req.user_context.aws_accounts, prompt=req.prompt))
    assert checked.risk_assessment.local_level == "high"  # production instance
    assert "a production instance is rebooted to take the image" in checked.risk_assessment.reasons
