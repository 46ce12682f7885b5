"""Values in the prompt (agent.slots) are taken whole, quotes and apostrophes included, or refused with the
reason by validation: never cut to the part that looks valid, never replaced by a default."""

from __future__ import annotations

import pytest

from agent.playbook import ParamSpec
from agent.slots import SlotError, extract, validate

MESSAGE = ParamSpec(name="message", kind="string", description="The message", required=True,
                    cues=["saying", "with text", "with message"])
SNAPSHOT = ParamSpec(name="snapshot_name", kind="identifier", description="Name of the snapshot", required=True,
                     cues=["named", "called", "as"], pattern="^[a-zA-Z][a-zA-Z0-9-]{0,254}$")


def masked(prompt: str, target: str) -> str:
    """As the planner masks the target's own name (agent.planner._value_text)."""
    return prompt.lower().replace(target, "§")


@pytest.mark.parametrize("prompt, value", [
    ('publish "db won\'t start, investigating" to ops-alerts', "db won't start, investigating"),
    ("publish 'it's done' to ops-alerts", "it's done"),
    ('send to ops-alerts saying "ok: it\'s fixed; closing"', "ok: it's fixed; closing"),
    ("publish to ops-alerts saying Deploy finished, all good", "Deploy finished, all good"),
])
def test_a_message_is_taken_whole(prompt, value):
    assert extract(MESSAGE, prompt, masked(prompt, "ops-alerts")) == value


@pytest.mark.parametrize("prompt, value", [
    ("snapshot pg-main named foo;rm-rf", "foo;rm-rf"), ("snapshot pg-main named $(whoami)", "$(whoami)"),
    ("snapshot pg-main named Pre-Upgrade-2", "Pre-Upgrade-2"), ("snapshot pg-main named pre-upgrade.", "pre-upgrade"),
    ("snapshot pg-main named 'nightly 1'", "nightly 1"), ("snapshot pg-main as 2024-before", "2024-before"),
])
def test_a_name_is_the_whole_word_after_its_cue(prompt, value):
    assert extract(SNAPSHOT, prompt, masked(prompt, "pg-main")) == value


@pytest.mark.parametrize("value", ["foo;rm-rf", "$(whoami)", "nightly 1", "2024-before"])
def test_a_name_that_breaks_the_pattern_is_refused_with_the_reason(value):
    with pytest.raises(SlotError, match="does not match"):
        validate(SNAPSHOT, value)


def test_through_the_planner_a_refused_name_is_a_question_never_a_default(planner, seed_resource):
    from agent.protocol import PlanRequest

    for name in ("foo;rm-rf", "$(whoami)"):
        plan = planner.plan(PlanRequest(prompt=f"snapshot pg-instance-main1 named {name}",
                                        identified_resources=[seed_resource]))
        assert plan.clarification is not None and name in plan.clarification.question
        assert not plan.script.steps
