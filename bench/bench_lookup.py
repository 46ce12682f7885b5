"""Lookup benchmark (issue 14): p50/p95 of the lookup at 10k / 100k / 1M resources, in a fresh process
that opens the index as the app does, with its RSS and the index's size on disk.

The index is the real store (a Qdrant Edge shard written through ResourceStore: payload, BM25, name
trigrams, meaning vectors, HNSW built as the app builds it, off the serving process). Documents are
synthetic but shaped like the real ones (names, types, tags, accounts, regions, states). Vectors: the
real model embeds 2,000 distinct dense texts; larger sizes reuse those vectors with small noise
(embedding a million texts would take hours on 2 cores and does not change search cost). Query
embeddings are made once up front and handed to the probe (a typing user's repeats are cached the same
way), so the timings are the lookup's own.

Query sets: **hybrid, filtered** (free text and at least one filter: account, region, type, state or a
tag expression; the target), **hybrid** (free text alone) and **pure filters** (a tag expression alone:
every match is a hit, ordered by name). Baselines in the same probe: Edge's own single dense query with
a payload filter (the engine's floor: the lookup makes several such calls and fuses them) and, up to
100k, a numpy brute-force cosine over the same vectors.

Run: nice python bench/bench_lookup.py [--sizes 10000 100000] [--sizes 1000000] [--rounds 20].
Results: bench/results/lookup.json (sizes measured earlier are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import RESULTS, machine, pct, save_results  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from app.estate.documents import ResourceDocument, dense_text, make_document  # noqa: E402

ACCOUNTS = [("production", "111111111111"), ("staging", "222222222222"), ("dev", "333333333333"),
            ("shared", "444444444444")]
REGIONS = ["us-east-1", "us-west-2"]
KINDS = [("rds_db_instance", "db"), ("ec2_instance", "web"), ("sqs_queue", "queue"), ("lambda_function", "fn"),
         ("dynamodb_table", "table"), ("s3_bucket", "bucket"), ("sns_topic", "topic"), ("autoscaling_group", "asg")]
APPS = ["orders", "payments", "billing", "search", "catalog", "checkout", "auth", "reports", "media", "ledger"]
def synthetic_doc(i: int) -> ResourceDocument:
    """Resource ``i``: every account holds every type in both regions (kinds, accounts, regions, apps and
    states vary independently of one another)."""
    rtype, noun = KINDS[i % len(KINDS)]
    account, account_id = ACCOUNTS[(i // len(KINDS)) % len(ACCOUNTS)]
    region = REGIONS[(i // 32) % len(REGIONS)]
    app = APPS[(i // 64) % len(APPS)]
    name = "pg-instance-main1" if i == 0 else f"{app}-{noun}-{i}"
    env = {"production": "production", "staging": "staging", "dev": "dev", "shared": "shared"}[account]
    state = ("available", "running", "stopped", None)[(i * 7 + i // 5) % 4]
    return make_document(
        resource_type=rtype, arn=f"arn:aws:bench:{region}:{account_id}:{rtype}/{name}", resource_id=name, name=name,
        account_id=account_id, account_name=account, region=region, state=state,
        tags={"env": env, "app": "main" if i == 0 else app, "team": f"team-{i % 17}"},
        attributes={"engine": "postgres"} if rtype == "rds_db_instance" and i % 2 == 0 else {})


def _typo(name: str) -> str:
    return name[:2] + name[3:]  # one letter left out: "orders-web-1001" -> "orers-web-1001"


_A, _B = synthetic_doc(1001), synthetic_doc(1234)
HYBRID_FILTERED = [f"{_A.name} in {_A.account_name}", "payments queue in production", "production postgres database",
                   f"{_typo(_B.name)} in {_B.account_name}", "function that resizes images in dev",
                   "billing tables in us-west-2", "env=prod AND app=orders queue", "stopped instances in staging",
                   "catalog bucket in us-east-1", "ledger topic in dev"]
HYBRID = ["pg-instance-main1", "billing", "search cache", synthetic_doc(4321).name, "auth service queue"]
PURE_FILTERS = ["env=prod AND app=main", "team=team-3 AND env=staging"]


def scope_of(i: int) -> str:
    """The scope of ``synthetic_doc(i)`` without making it."""
    from agent.protocol import RESOURCE_TYPES

    return (f"{ACCOUNTS[(i // len(KINDS)) % len(ACCOUNTS)][1]}/{REGIONS[(i // 32) % len(REGIONS)]}/"
            f"{RESOURCE_TYPES[KINDS[i % len(KINDS)][0]]}")


def du_mb(path: Path) -> float:
    """Disk space used (allocated blocks: the write-ahead log files are sparse, 32 MB apparent each)."""
    return round(sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def build(size: int, directory: Path, base_vectors: np.ndarray) -> dict:
    """Write ``size`` documents scope by scope, then their vectors, then build HNSW (as the app's child
    process does). Returns timings."""
    from app.estate.resource_store import ResourceStore

    store = ResourceStore(directory)
    by_scope: dict[str, list[int]] = defaultdict(list)
    for i in range(size):
        by_scope[scope_of(i)].append(i)
    noise = np.random.default_rng(size)
    listing_s = vectors_s = 0.0
    for scope, members in by_scope.items():
        docs = [synthetic_doc(i) for i in members]
        started = time.perf_counter()
        written = store.write_listing(scope, docs)
        listing_s += time.perf_counter() - started
        vectors = base_vectors[np.asarray(members) % len(base_vectors)] + noise.normal(0, 0.01, (len(members), 384))
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        by_id = {d.id: v for d, v in zip(docs, vectors)}
        started = time.perf_counter()
        store.write_vectors(written.to_embed, [by_id[d.id] for d in written.to_embed])
        vectors_s += time.perf_counter() - started
    store.shard.flush()
    started = time.perf_counter()
    built = store.optimize_in_background()
    store.wait_for_optimizer()
    hnsw_s = time.perf_counter() - started
    info = store.shard.info()
    store.close()
    return {"write_listing_s": round(listing_s, 1), "write_vectors_s": round(vectors_s, 1),
            "hnsw_build_s": round(hnsw_s, 1) if built else None, "segments": info.segments_count,
            "points": info.points_count}


_PROBE = r"""
import json, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, {root!r})
from bench.common import pct

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

started = time.perf_counter()
from app.estate.lookup import LookupIndex
from app.estate.resource_store import DENSE, ResourceStore
store = ResourceStore(Path({store!r}))
vectors = dict(np.load({vectors!r}, allow_pickle=True).item())
index = LookupIndex(store, lambda text: vectors[text])
index.search("pg-instance-main1")
open_s = time.perf_counter() - started
sets = json.loads({sets!r})
out = {{"open_s": round(open_s, 2)}}
for name, queries in sets.items():
    for q in queries:
        index.search(q, limit=10)  # warm
    times = []
    for _ in range({rounds}):
        for q in queries:
            t = time.perf_counter()
            index.search(q, limit=10)
            times.append(time.perf_counter() - t)
    out[name] = {{"p50_ms": round(pct(times, 0.5) * 1000, 2), "p95_ms": round(pct(times, 0.95) * 1000, 2),
                  "max_ms": round(max(times) * 1000, 2), "n": len(times)}}
from qdrant_edge import FieldCondition, Filter, MatchValue, Query, QueryRequest
flt = Filter(must=[FieldCondition(key="account_id", match=MatchValue("111111111111")),
                   FieldCondition(key="resource_type", match=MatchValue("rds_db_instance"))])
qv = [float(x) for x in vectors["production postgres database"]]
times = []
for _ in range({rounds} * 10):
    t = time.perf_counter()
    store.shard.query(QueryRequest(limit=10, query=Query.Nearest(qv, using=DENSE), filter=flt))
    times.append(time.perf_counter() - t)
out["edge_dense_filtered"] = {{"p50_ms": round(pct(times, 0.5) * 1000, 2), "p95_ms": round(pct(times, 0.95) * 1000, 2)}}
out["rss_mb_index"] = round(rss(), 1)
if {with_model}:
    from agent.embeddings import shared_embedder
    e = shared_embedder(); e.encode(["warm"])
    out["rss_mb_index_and_model"] = round(rss(), 1)
store.close()
print(json.dumps(out))
"""


def probe(store_dir: Path, vectors_file: Path, rounds: int, with_model: bool) -> dict:
    sets = {"hybrid_filtered": HYBRID_FILTERED, "hybrid": HYBRID, "pure_filters": PURE_FILTERS}
    code = _PROBE.format(root=str(ROOT), store=str(store_dir), vectors=str(vectors_file), rounds=rounds,
                         sets=json.dumps(sets), with_model=with_model)
    reply = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if reply.returncode != 0:
        raise RuntimeError(f"the probe failed: {reply.stderr[-3000:]}")
    return json.loads(reply.stdout.strip().splitlines()[-1])


def numpy_baseline(size: int, base_vectors: np.ndarray, query: np.ndarray, rounds: int) -> float:
    """p95 of a plain cosine over ``size`` vectors with a boolean mask (what the old lookup did)."""
    vectors = base_vectors[np.arange(size) % len(base_vectors)]
    mask = (np.arange(size) % 4 == 0) & (np.arange(size) % 8 == 0)
    times = []
    for _ in range(rounds * 10):
        t = time.perf_counter()
        scores = np.where(mask, vectors @ query, -2.0)
        np.argpartition(-scores, 10)[:10]
        times.append(time.perf_counter() - t)
    return round(pct(times, 0.95) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None, help="where to build (default: a temporary folder)")
    args = parser.parse_args()
    from agent.embeddings import shared_embedder

    embedder = shared_embedder()
    base_vectors = embedder.encode([dense_text(synthetic_doc(i)) for i in range(2000)])
    queries = sorted({*HYBRID_FILTERED, *HYBRID, *PURE_FILTERS})
    previous = json.loads((RESULTS / "lookup.json").read_text()) if (RESULTS / "lookup.json").exists() else {}
    results: dict = {"machine": machine(), "rounds": args.rounds, "queries": {"hybrid_filtered": HYBRID_FILTERED,
                     "hybrid": HYBRID, "pure_filters": PURE_FILTERS}, "sizes": dict(previous.get("sizes", {}))}
    for size in args.sizes:
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-lookup-{size}-", dir=args.workdir))
        try:
            load_before = os.getloadavg()
            started = time.perf_counter()
            timings = build(size, workdir / "index", base_vectors)
            timings["build_s"] = round(time.perf_counter() - started, 1)
            vectors_file = workdir / "query_vectors.npy"
            np.save(vectors_file, _query_vectors(workdir / "index", embedder, queries), allow_pickle=True)
            row = {**timings, "index_size_mb": du_mb(workdir / "index"),
                   **probe(workdir / "index", vectors_file, args.rounds, with_model=True),
                   "load_average_before": [round(x, 2) for x in load_before],
                   "load_average_after": [round(x, 2) for x in os.getloadavg()]}
            if size <= 100000:
                qv = np.asarray(embedder.encode(["production postgres database"])[0], dtype=np.float32)
                row["numpy_masked_cosine_p95_ms"] = numpy_baseline(size, base_vectors, qv, args.rounds)
            row["ratio_hybrid_filtered_p95_vs_edge_dense_filtered_p95"] = round(
                row["hybrid_filtered"]["p95_ms"] / max(row["edge_dense_filtered"]["p95_ms"], 1e-3), 1)
            results["sizes"][str(size)] = row
            print(size, json.dumps(row), flush=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    results["targets"] = {"hybrid_filtered_p95_ms": {"10000": 5, "100000": 10, "1000000": 50},
                          "rss_mb_at_1000000": 1024}
    save_results("lookup", results)


def _query_vectors(index_dir: Path, embedder, queries: list[str]) -> dict[str, np.ndarray]:
    """Every text the lookup will embed for ``queries`` (its synonym-expanded free text): recorded by
    running each query once against the built index with a recording embedder."""
    from app.estate.lookup import LookupIndex
    from app.estate.resource_store import ResourceStore

    seen: dict[str, np.ndarray] = {}

    def record(text: str) -> np.ndarray:
        if text not in seen:
            seen[text] = np.asarray(embedder.encode([text])[0], dtype=np.float32)
        return seen[text]

    store = ResourceStore(index_dir)
    try:
        index = LookupIndex(store, record)
        for q in queries:
            index.search(q)
        seen.setdefault("production postgres database", record("production postgres database"))
    finally:
        store.close()
    return seen


if __name__ == "__main__":
    main()
