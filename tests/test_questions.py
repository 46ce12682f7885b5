"""A question never yields a change (agent.questions and its guard in the planner): whatever ranks first,
a prompt phrased as a question is answered by reading, or by nothing."""

from __future__ import annotations

import pytest

from agent.classifier import Scored
from agent.prompt import parse_prompt
from agent.protocol import PlanRequest
from agent.questions import guard_question


def ec2(name: str, n: int, state: str = "running", score: float = 0.3) -> dict:
    return {"resource_type": "ec2_instance", "resource_id": f"i-{n:04d}", "name": name, "account_id": "111111111111",
            "account_name": "production", "region": "us-west-2", "current_state": state, "match_score": score}


def fn(name: str, score: float = 0.15) -> dict:
    return {"resource_type": "lambda_function", "resource_id": name, "name": name, "account_id": "111111111111",
            "account_name": "production", "region": "us-west-2", "attributes": {"runtime": "python3.12"},
            "match_score": score}


@pytest.mark.parametrize("prompt, resources", [
    ("which instances are stopped?", [ec2("web-server-3", 3, "stopped", 0.28), ec2("ci-runner", 4, "stopped", 0.23)]),
    ("is web-server-1 running?", [ec2("web-server-1", 1)]),
    ("is the bastion stopped", [ec2("bastion", 2)]),
    ("how many lambdas run python3.9?", [fn("image-resizer"), fn("orders-processor")]),
    ("should I terminate web-server-3?", [ec2("web-server-3", 3, "stopped", 0.9)]),
    ("did anyone reboot web-server-1 today?", [ec2("web-server-1", 1, score=0.9)]),
])
def test_a_question_plans_no_change(planner, prompt, resources):
    plan = planner.plan(PlanRequest(prompt=prompt, identified_resources=resources))
    assert not any(s.mutating for s in plan.script.steps), [s.operation for s in plan.script.steps]
    assert not plan.approval_required


def test_a_question_about_a_set_reads_each_of_them(planner):
    resources = [ec2("web-server-3", 3, "stopped", 0.28), ec2("ci-runner", 4, "stopped", 0.23)]
    plan = planner.plan(PlanRequest(prompt="which instances are stopped?", identified_resources=resources))
    assert [s.operation for s in plan.script.steps] == ["DescribeInstances"]
    assert sorted(plan.script.steps[0].targets) == ["i-0003", "i-0004"]


def test_a_polite_request_is_still_a_request(planner):
    plan = planner.plan(PlanRequest(prompt="can you stop web-server-1?", identified_resources=[ec2("web-server-1", 1)]))
    assert [s.operation for s in plan.script.steps] == ["StopInstances"] and plan.approval_required


def test_the_guard_picks_the_best_read_only_playbook_or_none(stack):
    stop = stack.playbooks["aws_ec2_stop_instances"]
    ranked = [Scored("aws_ec2_stop_instances", 0.8, 0.7, 0.5, 0.6, 1.0),
              Scored("aws_ec2_describe_instances", 0.6, 0.5, 0.3, 0.2, 1.0)]
    guard = guard_question(parse_prompt("which instances are stopped?"), stop, ranked, stack.playbooks)
    assert guard.changed and guard.playbook.id == "aws_ec2_describe_instances"
    assert guard_question(parse_prompt("stop the instances"), stop, ranked, stack.playbooks).playbook is stop
    only_changes = {"aws_ec2_stop_instances": stop}
    guard = guard_question(parse_prompt("is it stopped?"), stop, ranked[:1], only_changes)
    assert guard.playbook is None and "question" in guard.note
