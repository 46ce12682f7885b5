"""Load benchmark: `cloudops server --workers N` on loopback under 200 concurrent plan requests.

The server holds nothing between requests, so uvicorn workers (separate processes, each with its own
agent stack) should scale a CPU-bound planner with the cores. A bounded async load generator (httpx,
at most ``--concurrency`` requests in flight) sends the planner evaluation set's requests, cycled to
``--requests``; every answer must be 200 with a plan. Reported per worker count: p50/p95/max latency,
throughput and errors, and the ratio of workers=2 against workers=1 measured in the same run (the
baseline). The load generator shares the machine's cores with the workers, as it would on a laptop.

Run: python bench/bench_load.py [--requests 200] [--concurrency 50] [--rounds 3]. Results:
bench/results/load.json, then python bench/report.py for RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, machine, ms, pct, save_results  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402

from agent.evaluation import load_cases, request_for  # noqa: E402


def start_server(workers: int, port: int, threads: int | None) -> subprocess.Popen:
    """The real `cloudops server` in its own process group (uvicorn's workers are its children).
    ``threads`` caps torch's intra-op threads per worker (OMP_NUM_THREADS); None leaves torch's default
    (all cores), with which one worker's embedding already uses both cores of this machine."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return subprocess.Popen([sys.executable, "-m", "app.interfaces.cli", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", str(workers)], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


async def fire(url: str, bodies: list[str], concurrency: int) -> tuple[list[float], list[str], float]:
    """Send every body once, at most ``concurrency`` in flight: (latencies, errors, wall seconds)."""
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def one(body: str) -> None:
            async with limit:
                started = time.perf_counter()
                try:
                    reply = await client.post("/v1/plan", content=body, headers={"content-type": "application/json"})
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                    return
                latencies.append(time.perf_counter() - started)
                if reply.status_code != 200 or "script" not in reply.json():
                    errors.append(f"HTTP {reply.status_code}")

        started = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return latencies, errors, time.perf_counter() - started


def wait_ready(url: str, workers: int, timeout: float = 300) -> float:
    """Until every worker has built its stack: plans answered from fresh connections (which the kernel
    spreads over the workers' shared socket) come back fast several times in a row."""
    started = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        try:
            if httpx.get(url + "/v1/health", timeout=2).json().get("status") == "ok":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        raise TimeoutError("server did not become healthy")
    return time.perf_counter() - started


def run(workers: int, bodies: list[str], concurrency: int, rounds: int, threads: int | None = None) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(workers, port, threads)
    try:
        ready_s = wait_ready(url, workers)
        # Warm every worker (its first plans pay lazy imports): a full burst, not measured.
        asyncio.run(fire(url, bodies[: 20 * workers], concurrency))
        per_round = []
        for _ in range(rounds):
            latencies, errors, wall = asyncio.run(fire(url, bodies, concurrency))
            per_round.append({"p50_ms": ms(pct(latencies, 0.5)), "p95_ms": ms(pct(latencies, 0.95)),
                              "max_ms": ms(max(latencies)), "wall_s": round(wall, 2),
                              "throughput_rps": round(len(bodies) / wall, 1), "errors": len(errors),
                              "error_kinds": sorted(set(errors))})
    finally:
        stop_server(proc)
    best = sorted(per_round, key=lambda r: r["wall_s"])[len(per_round) // 2]  # the median round by wall time
    return {"ready_s": round(ready_s, 1), "median_round": best, "rounds": per_round,
            "errors_total": sum(r["errors"] for r in per_round)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    estate, cases = load_cases(ROOT / "tests" / "eval")
    requests = [request_for(c, estate).model_dump_json() for c in cases]
    bodies = [requests[i % len(requests)] for i in range(args.requests)]
    results = {
        "machine": {**machine(),
                    "load_avg_1m_at_start": round(os.getloadavg()[0], 2)},
        "requests_per_round": args.requests, "concurrency": args.concurrency, "rounds": args.rounds,
        "request_mix": f"{len(requests)} planner evaluation requests, cycled",
    }
    all_rounds = {}
    for label, threads in (("torch_default_threads", None), ("one_torch_thread_per_worker", 1)):
        by_workers = {f"workers_{n}": run(n, bodies, args.concurrency, args.rounds, threads) for n in args.workers}
        section = {k: {**v["median_round"], "ready_s": v["ready_s"], "errors_all_rounds": v["errors_total"]}
                   for k, v in by_workers.items()}
        if "workers_1" in by_workers and "workers_2" in by_workers:
            one, two = by_workers["workers_1"]["median_round"], by_workers["workers_2"]["median_round"]
            section["workers_2_vs_1"] = {
                "throughput_ratio": round(two["throughput_rps"] / one["throughput_rps"], 2),
                "p50_ratio": round(two["p50_ms"] / one["p50_ms"], 2),
                "p95_ratio": round(two["p95_ms"] / one["p95_ms"], 2),
            }
        results[label] = section
        all_rounds[label] = {k: v["rounds"] for k, v in by_workers.items()}
    results["errors_total"] = sum(r["errors"] for sec in all_rounds.values() for rounds in sec.values() for r in rounds)
    results["all_rounds"] = all_rounds
    save_results("load", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
