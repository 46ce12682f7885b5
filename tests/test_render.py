"""The CLI's plan text (app.interfaces.render): the answer from the estate first; confidence, risk and approval
each said once (issue 15: they were printed twice, once by the explain plan and once by the renderer)."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from agent.protocol import Answer, PlanRequest
from app.interfaces.render import render_plan


def text(plan) -> str:
    return click.unstyle(render_plan(plan))


def test_confidence_risk_and_approval_are_said_once(planner, seed_resource):
    plan = planner.plan(PlanRequest(prompt="stop pg-instance-main1", identified_resources=[seed_resource]))
    out = text(plan)
    assert out.count("confidence") == 1 and out.count("Risk") == 1 and out.count("pproval") == 1, out
    assert "Risk: MEDIUM: production database" in out and "aws rds stop-db-instance" in out


def test_a_read_says_once_that_it_needs_no_approval(planner, seed_resource):
    plan = planner.plan(PlanRequest(prompt="describe pg-instance-main1", identified_resources=[seed_resource]))
    out = text(plan)
    assert out.count("no approval needed") == 1 and out.count("confidence") == 1, out


def test_the_answer_from_the_estate_comes_first(planner, seed_resource):
    plan = planner.plan(PlanRequest(prompt="is pg-instance-main1 available?", identified_resources=[seed_resource]))
    plan.answer = Answer(text="Yes: pg-instance-main1 (production / us-west-2) is available. (synced 4 min ago)",
                         resources=["pg-instance-main1"], as_of=datetime.now(timezone.utc))
    lines = text(plan).splitlines()
    assert lines[1].startswith("Answer: Yes: pg-instance-main1") and "synced 4 min ago" in lines[1]
    assert '"answer"' in plan.model_dump_json()  # --json carries it as it is
