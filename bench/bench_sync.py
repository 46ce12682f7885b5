"""Sync benchmark: full sync of ~1k / 5k / 10k resources over 4 accounts x 2 regions on moto, and a
re-sync with nothing changed; baselines measured in the same run:
- raw embedding throughput of the very same document texts (the bottleneck of a full sync);
- the full sync's own time, for the unchanged re-sync (target: 0 embedded, <= 15% of it).

Each round models the tray app: a fresh index and a fresh SessionPool (so the full sync pays for making
every boto3 session and client), then the unchanged re-sync in the same process, reusing them, as the
app's 15-minute incremental schedule does. CPU seconds of this process and of moto are recorded beside
the wall times: moto's share is CPU that AWS would spend on its own machines, not ours. On a machine
whose cores are all busy, the throughput ratio cannot pass the embedding's share of all the CPU the
sync spends (``embedding_share_of_sync_cpu``: raw embedding CPU over the sync's and moto's CPU): the rest
is listing, parsing, writing, and moto answering, on the same two cores.

moto runs as a separate ``moto_server`` process on 127.0.0.1 (so it does not share our GIL), which is
as close to a remote API as this machine gets; its per-call cost (~4 ms) is not AWS's.

Run: python bench/bench_sync.py [--sizes 1000 5000 10000] [--rounds 3]. Results: bench/results/sync.json.
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
from bench.common import free_port, save_results  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agent.embeddings import shared_embedder  # noqa: E402
from app.config import AccountConfig  # noqa: E402
from app.demo.demo_estate import DEMO_ACCOUNTS, DemoAccount, build_estate, reset_moto, write_aws_config  # noqa: E402
from app.awsclient import SessionPool  # noqa: E402
from app.estate.resource_store import ResourceStore  # noqa: E402
from app.estate.sync import SyncEngine  # noqa: E402

ACCOUNTS = [*DEMO_ACCOUNTS, DemoAccount("shared", "444444444444", "shared", ["us-west-2", "us-east-1"])]
BASE = 94 + 20  # roughly what the hand-written estate holds for four accounts


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return proc, url


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    embedder = shared_embedder()
    embedder.encode(["warm up"])
    proc, url = start_server()
    results: dict = {"accounts": len(ACCOUNTS), "regions": 2, "rounds": args.rounds, "sizes": {}}
    try:
        with tempfile.TemporaryDirectory() as aws_dir:
            os.environ.update(write_aws_config(Path(aws_dir), ACCOUNTS, url))
            for size in args.sizes:
                extra = max(0, (size - BASE) // (len(ACCOUNTS) * 2))
                reset_moto(url)
                built = build_estate(ACCOUNTS, extra_per_scope=extra)
                accounts = [AccountConfig(name=a.name, profile=a.profile, regions=a.regions) for a in ACCOUNTS]
                full, resync, raw, raw_cpu, embedded, docs = [], [], [], [], 0, 0
                moto_cpu, own_cpu = [], []
                for _ in range(args.rounds):
                    with tempfile.TemporaryDirectory() as home:
                        store = ResourceStore(Path(home))
                        pool = SessionPool()
                        engine = SyncEngine(store, embedder.encode, accounts, pool=pool)
                        moto_before, own_before = cpu_seconds(proc.pid), cpu_seconds(os.getpid())
                        started = time.perf_counter()
                        report = engine.run()
                        full.append(time.perf_counter() - started)
                        moto_cpu.append(cpu_seconds(proc.pid) - moto_before)
                        own_cpu.append(cpu_seconds(os.getpid()) - own_before)
                        assert report.ok, report.errors[:3]
                        embedded = report.as_json()["embedded"]
                        docs = store.count()
                        texts = [r for r, in store.engine.connect().exec_driver_sql("select text from resource")]
                        started = time.perf_counter()
                        report = SyncEngine(store, embedder.encode, accounts, pool=pool).run()
                        resync.append(time.perf_counter() - started)
                        assert report.ok and report.as_json()["embedded"] == 0
                        own_before, started = cpu_seconds(os.getpid()), time.perf_counter()
                        embedder.encode(texts)  # the strongest baseline: one call, sorted by length inside
                        raw.append(time.perf_counter() - started)
                        raw_cpu.append(cpu_seconds(os.getpid()) - own_before)
                        store.close()
                row = {
                    "resources": built.total, "documents": docs, "embedded_full": embedded,
                    "full_sync_median_s": round(statistics.median(full), 2),
                    "raw_embedding_median_s": round(statistics.median(raw), 2),
                    "full_sync_docs_per_s": round(docs / statistics.median(full), 1),
                    "full_sync_cpu_s": {"cloudops": round(statistics.median(own_cpu), 1),
                                        "moto_server": round(statistics.median(moto_cpu), 1)},
                    "raw_embedding_docs_per_s": round(docs / statistics.median(raw), 1),
                    "raw_embedding_cpu_s": round(statistics.median(raw_cpu), 1),
                    "embedding_share_of_sync_cpu": round(statistics.median(raw_cpu) / (
                        statistics.median(own_cpu) + statistics.median(moto_cpu)), 3),
                    "ratio_sync_vs_raw_embedding_throughput": round(statistics.median(raw) / statistics.median(full), 3),
                    "unchanged_resync_median_s": round(statistics.median(resync), 2),
                    "unchanged_resync_embedded": 0,
                    "ratio_resync_vs_full": round(statistics.median(resync) / statistics.median(full), 3),
                    "targets": {"ratio_sync_vs_raw_embedding_throughput": ">= 0.8", "ratio_resync_vs_full": "<= 0.15"},
                }
                results["sizes"][str(size)] = row
                print(size, json.dumps(row), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    save_results("sync", results)


if __name__ == "__main__":
    main()
