"""Operation catalogue benchmarks: building the agent stack's index from nothing (playbooks + the 1,771-entry
catalogue), a second start on the cache, and plan latency with the full catalogue.

Each start runs in a fresh interpreter (what `cloudops server` or the CLI does), timed from before the first
import to a built AgentStack, wall and CPU seconds (on a shared machine the CPU figure is the steadier one):
- cold: empty index folder and empty catalogue vector cache (embeds ~3,900 texts, the embedding model loads);
  baseline: raw embedding of the same texts in the same run (what the model alone costs);
- warm: the same folders again (nothing embedded; the catalogue read from SQLite, not from botocore's shapes);
  baseline: `python -c "import agent.planner"` (the imports alone).
Plan latency: every prompt of tests/eval_catalogue and tests/eval planned in-process, against one query
embedding (the irreducible model call).

Run: python bench/bench_catalogue.py [--rounds N]. Results: bench/results/catalogue.json.
Targets (issue 13): build from nothing <= 60 s on 2 cores, second start <= 2 s, plan p50 <= 50 ms.
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

_START = """
import resource, sys, time
t0 = time.perf_counter()
from pathlib import Path
from agent.planner import AgentStack
stack = AgentStack.build(cache_dir=Path(sys.argv[1]))
wall = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
print({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "playbook_texts": stack.index_stats.embedded_texts,
       "catalogue_texts": stack.catalogue_stats.embedded_texts, "entries": len(stack.catalogue)})
"""
_IMPORT = """
import resource, time
t0 = time.perf_counter()
import agent.planner
usage = resource.getrusage(resource.RUSAGE_SELF)
print({"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime})
"""


def _run(code: str, *args: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=900, check=True)
    return eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own child's dict literal


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from agent.catalogue import build_entries
    from agent.embeddings import shared_embedder
    from agent.playbook import load_playbooks
    from agent.playbook_index import _texts

    embedder = shared_embedder()
    embedder.encode(["warm up"])
    texts = [t for lp in load_playbooks(ROOT / "playbooks") for t in _texts(lp)]
    texts += list(dict.fromkeys(t for e in build_entries() for t in e.texts()))

    cold, warm, imports, raw = [], [], [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        embedder.encode(texts)
        raw.append(time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "CLOUDOPS_CATALOGUE_CACHE": str(Path(tmp) / "vectors")}
            cold.append(_run(_START, str(Path(tmp) / "index"), env=env))
            warm.append(_run(_START, str(Path(tmp) / "index"), env=env))
            warm.append(_run(_START, str(Path(tmp) / "index"), env=env))
            imports.append(_run(_IMPORT, env=env))
    assert all(w["playbook_texts"] == 0 and w["catalogue_texts"] == 0 for w in warm), warm

    # Plan latency with the full catalogue (the vectors of the cold runs are gone: a user-level cache is used).
    from agent.evaluation import load_cases, request_for
    from agent.planner import AgentStack

    stack = AgentStack.build(ROOT / "playbooks", embedder=embedder)
    planner = stack.planner("server")
    requests = []
    for folder, cases_file in ((ROOT / "tests" / "eval_catalogue", "cases.yaml"), (ROOT / "tests" / "eval",
                                                                                   "plan_cases.yaml")):
        estate, cases = load_cases(folder, cases_file)
        requests += [request_for(c, estate) for c in cases]
    for r in requests[:10]:
        planner.plan(r)
    plan_s, query_s = [], []
    for r in requests:
        started = time.perf_counter()
        embedder.encode([r.prompt])
        query_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        planner.plan(r)
        plan_s.append(time.perf_counter() - started)

    def med(rows: list[dict], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 3)

    results = {
        "machine": machine(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "entries": cold[0]["entries"], "texts_embedded_cold": cold[0]["playbook_texts"] + cold[0]["catalogue_texts"],
        "build_from_nothing": {"wall_median_s": med(cold, "wall_s"), "cpu_median_s": med(cold, "cpu_s"),
                               "baseline_raw_embedding_median_s": round(statistics.median(raw), 3),
                               "ratio_vs_raw_embedding": round(med(cold, "wall_s") / statistics.median(raw), 2),
                               "target_s": 60},
        "second_start": {"wall_median_s": med(warm, "wall_s"), "cpu_median_s": med(warm, "cpu_s"),
                         "baseline_imports_median_s": med(imports, "wall_s"),
                         "ratio_vs_imports": round(med(warm, "wall_s") / med(imports, "wall_s"), 2), "target_s": 2},
        "plan_in_process_full_catalogue": {
            "requests": len(requests), "p50_ms": ms(pct(plan_s, 0.5)), "p95_ms": ms(pct(plan_s, 0.95)),
            "baseline_query_embedding_p50_ms": ms(pct(query_s, 0.5)),
            "ratio_p50_vs_baseline": round(pct(plan_s, 0.5) / pct(query_s, 0.5), 2), "target_p50_ms": 50},
    }
    save_results("catalogue", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
