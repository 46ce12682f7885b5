"""Planner benchmarks: playbook index build, plan latency in-process and over HTTP.

Each figure is a median (and p95 where it is a latency) over repeated runs, with a ratio against a
baseline measured in the same run on the same machine:
- index build (cold) vs. raw embedding of the same texts: what indexing adds to the model's work;
- index build (warm, nothing changed) vs. cold: what the cache saves;
- plan in-process vs. one query embedding: what planning adds to the irreducible model call;
- plan over HTTP (uvicorn on loopback) vs. in-process: what the server adds.

Run: python bench/bench_planner.py [--rounds N]. Results: bench/results/planner.json and RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, machine, ms, pct, save_results  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from agent.embeddings import shared_embedder  # noqa: E402
from agent.evaluation import load_cases, request_for  # noqa: E402
from agent.planner import AgentStack  # noqa: E402
from agent.playbook import load_playbooks  # noqa: E402
from agent.playbook_index import _texts  # noqa: E402
from agent.server import create_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    embedder = shared_embedder()
    embedder.encode(["warm up"])
    playbooks = load_playbooks(ROOT / "playbooks")
    texts = [t for lp in playbooks for t in _texts(lp)]

    raw, cold, warm = [], [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        embedder.encode(texts)
        raw.append(time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            AgentStack.build(ROOT / "playbooks", cache_dir=Path(tmp), embedder=embedder).index.close()
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            stack = AgentStack.build(ROOT / "playbooks", cache_dir=Path(tmp), embedder=embedder)
            warm.append(time.perf_counter() - started)
            stack.index.close()

    stack = AgentStack.build(ROOT / "playbooks", embedder=embedder)
    planner = stack.planner("server")
    estate, cases = load_cases(ROOT / "tests" / "eval")
    requests = [request_for(c, estate) for c in cases]
    for r in requests[:10]:
        planner.plan(r)

    query_only, in_process = [], []
    for _ in range(args.rounds):
        for r in requests:
            started = time.perf_counter()
            embedder.encode([r.prompt])
            query_only.append(time.perf_counter() - started)
            started = time.perf_counter()
            planner.plan(r)
            in_process.append(time.perf_counter() - started)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(lambda: stack), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    over_http = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        bodies = [r.model_dump_json() for r in requests]
        for body in bodies[:10]:
            client.post("/v1/plan", content=body, headers={"content-type": "application/json"})
        for _ in range(args.rounds):
            for body in bodies:
                started = time.perf_counter()
                reply = client.post("/v1/plan", content=body, headers={"content-type": "application/json"})
                over_http.append(time.perf_counter() - started)
                assert reply.status_code == 200
    server.should_exit = True
    thread.join(timeout=10)

    results = {
        "machine": machine(),
        "playbooks": len(playbooks), "texts": len(texts), "plan_requests": len(requests) * args.rounds,
        "index_build": {
            "raw_embedding_median_s": round(statistics.median(raw), 3),
            "cold_median_s": round(statistics.median(cold), 3),
            "warm_median_s": round(statistics.median(warm), 3),
            "cold_vs_raw_embedding": round(statistics.median(cold) / statistics.median(raw), 2),
            "warm_vs_cold": round(statistics.median(warm) / statistics.median(cold), 3),
        },
        "plan_in_process": {"p50_ms": ms(pct(in_process, 0.5)), "p95_ms": ms(pct(in_process, 0.95)),
                            "baseline_query_embedding_p50_ms": ms(pct(query_only, 0.5)),
                            "ratio_p50_vs_baseline": round(pct(in_process, 0.5) / pct(query_only, 0.5), 2),
                            "target_p50_ms": 50},
        "plan_over_http": {"p50_ms": ms(pct(over_http, 0.5)), "p95_ms": ms(pct(over_http, 0.95)),
                           "ratio_p50_vs_in_process": round(pct(over_http, 0.5) / pct(in_process, 0.5), 2),
                           "target_p50_ms": 100},
    }
    save_results("planner", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
