"""Lookup benchmark: p50/p95 of hybrid search at 1k / 10k / 100k documents, warm and in-process, with
the RSS of the process holding the 100k index; baselines measured in the same run:
- Qdrant embedded mode's own filtered vector search over the same points (1k and 10k only: at 100k it
  needs minutes to load and gigabytes of RAM, see ../shared/README.md);
- a plain numpy brute-force cosine (vectors only, no fuzzy, lexical or filters).

Documents are synthetic but shaped like the real ones (names, types, tags, accounts, regions) and go
through the real store (SQLite). Vectors: the real model embeds 2,000 distinct document texts; larger
sizes reuse those vectors with small noise (embedding 100k texts would take ~15 min on 2 cores and
does not change search cost).

Run: python bench/bench_lookup.py [--sizes 1000 10000 100000]. Results: bench/results/lookup.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import pct, save_results  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from agent.embeddings import shared_embedder  # noqa: E402
from app.estate.documents import make_document  # noqa: E402
from app.estate.lookup import LookupIndex  # noqa: E402
from app.estate.resource_store import ResourceStore  # noqa: E402

ACCOUNTS = [("production", "111111111111"), ("staging", "222222222222"), ("dev", "333333333333"),
            ("shared", "444444444444")]
REGIONS = ["us-east-1", "us-west-2"]
KINDS = [("rds_db_instance", "db"), ("ec2_instance", "web"), ("sqs_queue", "queue"), ("lambda_function", "fn"),
         ("dynamodb_table", "table"), ("s3_bucket", "bucket"), ("sns_topic", "topic"), ("autoscaling_group", "asg")]
APPS = ["orders", "payments", "billing", "search", "catalog", "checkout", "auth", "reports", "media", "ledger"]
QUERIES = ["pg-instance-main1", "orders-db-17", "payments queue", "production postgres database", "env=prod AND app=orders",
           "ordrs-web-12 in staging", "bucket in us-west-2", "function that resizes images", "billing", "ledger-table-3"]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def synthetic_docs(n: int, rng: random.Random):
    docs = []
    for i in range(n):
        rtype, noun = KINDS[i % len(KINDS)]
        app = APPS[(i // len(KINDS)) % len(APPS)]
        account, account_id = ACCOUNTS[i % len(ACCOUNTS)]
        region = REGIONS[(i // 3) % len(REGIONS)]
        name = "pg-instance-main1" if i == 0 else f"{app}-{noun}-{i}"
        env = {"production": "production", "staging": "staging", "dev": "dev", "shared": "shared"}[account]
        docs.append(make_document(
            resource_type=rtype, arn=f"arn:aws:bench:{region}:{account_id}:{rtype}/{name}", resource_id=name, name=name,
            account_id=account_id, account_name=account, region=region, state=rng.choice(["available", "running", None]),
            tags={"env": env, "app": app, "team": f"team-{i % 17}"},
            attributes={"engine": "postgres"} if rtype == "rds_db_instance" and i % 2 == 0 else {}))
    return docs


_PROBE = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from app.estate.lookup import LookupIndex
from app.estate.resource_store import ResourceStore
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
index = LookupIndex.load(ResourceStore(Path({store!r})), None)
index.search("orders-db-17")
only = rss()
if {with_model}:
    from agent.embeddings import shared_embedder
    e = shared_embedder(); e.encode(["warm"])
print(json.dumps({{"rss": rss(), "index_only": only}}))
"""


def _fresh_process_rss(store_dir: Path) -> dict:
    """RSS of a new process that loads the index (and, second, also the embedding model): what a
    client holding this estate costs, without the benchmark's own leftovers."""
    import subprocess

    out = {}
    for label, with_model in (("index_only", False), ("index_and_model", True)):
        code = _PROBE.format(root=str(ROOT), store=str(store_dir), with_model=with_model)
        reply = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
        out[label] = round(json.loads(reply.stdout.strip().splitlines()[-1])["rss"], 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(7)
    embedder = shared_embedder()
    base_docs = synthetic_docs(2000, rng)
    base_vectors = embedder.encode([d.text for d in base_docs])
    results: dict = {"queries": QUERIES, "rounds": args.rounds, "sizes": {}}
    for size in args.sizes:
        docs = synthetic_docs(size, random.Random(size))
        noise = np.random.default_rng(size).normal(0, 0.01, (size, base_vectors.shape[1])).astype(np.float32)
        vectors = base_vectors[np.arange(size) % len(base_vectors)] + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with tempfile.TemporaryDirectory() as tmp:
            store = ResourceStore(Path(tmp))
            by_scope = defaultdict(list)
            for d in docs:
                by_scope[f"{d.account_id}/{d.region}/{d.service}"].append(d)
            vec_by_id = {d.id: v for d, v in zip(docs, vectors)}
            started = time.perf_counter()
            for scope, scoped in by_scope.items():
                store.apply_scope(scope, scoped, vec_by_id, write_qdrant=False)
            write_s = time.perf_counter() - started
            del docs, by_scope, vec_by_id
            gc.collect()
            rss_before = rss_mb()
            started = time.perf_counter()
            index = LookupIndex.load(store, lambda t: embedder.encode_query(t))
            load_s = time.perf_counter() - started
            rss_index = rss_mb() - rss_before
            for q in QUERIES:
                index.search(q)  # warm: query embeddings cached like a typing user's repeats
            hybrid = []
            for _ in range(args.rounds):
                for q in QUERIES:
                    t = time.perf_counter()
                    index.search(q, limit=10)
                    hybrid.append(time.perf_counter() - t)
            brute = []
            qvecs = [np.asarray(embedder.encode_query(q), dtype=np.float32) for q in QUERIES]
            for _ in range(args.rounds):
                for qv in qvecs:
                    t = time.perf_counter()
                    scores = index.vectors @ qv
                    np.argpartition(-scores, 10)[:10]
                    brute.append(time.perf_counter() - t)
            fresh = _fresh_process_rss(Path(tmp))
            row = {
                "fresh_process_rss_mb_index_only": fresh["index_only"],
                "fresh_process_rss_mb_index_and_model": fresh["index_and_model"],
                "store_write_s": round(write_s, 2), "index_load_s": round(load_s, 2),
                "index_rss_mb": round(rss_index, 1), "process_rss_mb": round(rss_mb(), 1),
                "hybrid_p50_ms": round(pct(hybrid, 0.5) * 1000, 2), "hybrid_p95_ms": round(pct(hybrid, 0.95) * 1000, 2),
                "numpy_bruteforce_p50_ms": round(pct(brute, 0.5) * 1000, 2),
                "ratio_hybrid_vs_numpy_p50": round(pct(hybrid, 0.5) / max(pct(brute, 0.5), 1e-9), 1),
            }
            if size <= 10000:
                from qdrant_client import QdrantClient, models

                client = QdrantClient(location=":memory:")
                client.create_collection("bench", vectors_config=models.VectorParams(size=vectors.shape[1],
                                                                                      distance=models.Distance.COSINE))
                payload_types = index.types
                for start in range(0, size, 1000):
                    client.upsert("bench", points=[models.PointStruct(id=i, vector=vectors[i].tolist(),
                                                                      payload={"type": payload_types[i]})
                                                   for i in range(start, min(size, start + 1000))])
                qd = []
                flt = models.Filter(must=[models.FieldCondition(key="type", match=models.MatchValue(value="rds_db_instance"))])
                for _ in range(max(3, args.rounds // 4)):
                    for qv in qvecs:
                        t = time.perf_counter()
                        client.query_points("bench", query=qv.tolist(), limit=10, query_filter=flt)
                        qd.append(time.perf_counter() - t)
                row["qdrant_embedded_filtered_p50_ms"] = round(pct(qd, 0.5) * 1000, 2)
                row["qdrant_embedded_filtered_p95_ms"] = round(pct(qd, 0.95) * 1000, 2)
                row["ratio_hybrid_vs_qdrant_p95"] = round(pct(hybrid, 0.95) / pct(qd, 0.95), 3)
                client.close()
            results["sizes"][str(size)] = row
            print(size, json.dumps(row), flush=True)
            store.close()
            del index
            gc.collect()
    results["targets"] = {"p95_ms_at_10k": 30, "p95_ms_at_100k": 80, "rss_mb_at_100k": 1024}
    save_results("lookup", results)


if __name__ == "__main__":
    main()
