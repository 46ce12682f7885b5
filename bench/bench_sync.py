"""Sync benchmark (issue 14): how soon a new user can search, how soon the index is complete, and what a
re-sync with nothing changed costs; ~1k / 10k resources over 4 accounts x 2 regions on moto.

Baseline measured in the same round: a **listing-only pass**, the same collectors over the same scopes
with the same thread pool and nothing written or embedded (what AWS and parsing cost; no index can be
ready sooner). Each round then runs, on a fresh index and a fresh SessionPool (as a first start does):

* a full sync, timing **searchable** (every listing written: each resource found by name, tags and
  words; checked afterwards by searching every resource's name) and **complete** (every meaning vector
  made and written);
* an unchanged re-sync in the same process (the app's incremental schedule): it must embed nothing.

Targets: searchable <= 1.3x the listing pass, complete <= 2.5x, re-sync <= 10% of the full sync, 0 embedded.
Medians of the rounds; the ratios are computed per round (the machine is shared: a ratio inside one round
cancels most of its load), and their medians reported. CPU seconds of this process and of moto, and the
machine's load average, are recorded beside the wall times.

moto runs as a separate ``moto_server`` process on 127.0.0.1 (so it does not share our GIL), which is as
close to a remote API as this machine gets; its per-call cost (~4 ms) is not AWS's.

Run: nice python bench/bench_sync.py [--sizes 1000 10000] [--rounds 3]. Results: bench/results/sync.json.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import free_port, machine, save_results  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agent.embeddings import shared_embedder  # noqa: E402
from app.awsclient import SessionPool  # noqa: E402
from app.config import AccountConfig  # noqa: E402
from app.demo.demo_estate import DEMO_ACCOUNTS, DemoAccount, build_estate, reset_moto, write_aws_config  # noqa: E402
from app.estate.lookup import LookupIndex  # noqa: E402
from app.estate.resource_store import ResourceStore  # noqa: E402
from app.estate.sync import MAX_WORKERS, SyncEngine  # noqa: E402

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


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def listing_pass(engine: SyncEngine) -> tuple[float, int]:
    """The collectors of every scope on the sync's own thread pool, nothing written: (seconds, documents)."""
    scopes, errors = engine.scopes()
    assert not errors, errors
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        documents = sum(len(docs) for docs, _, _ in pool.map(lambda s: engine._collect(s, None), scopes))
    return time.perf_counter() - started, documents


def every_name_found(store: ResourceStore) -> float:
    """The share of documents whose name, searched, returns them among the hits (exact names)."""
    index = LookupIndex(store)
    docs = list(store.all_documents())
    found = sum(any(h.id == d.id for h in index.search(d.name, limit=50)) for d in docs)
    return found / max(1, len(docs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    embedder = shared_embedder()
    embedder.encode(["warm up"])
    proc, url = start_server()
    results: dict = {"accounts": len(ACCOUNTS), "regions": 2, "rounds": args.rounds, "machine": machine(),
                     "load_average_at_start": load_average(), "sizes": {}}
    try:
        with tempfile.TemporaryDirectory() as aws_dir:
            os.environ.update(write_aws_config(Path(aws_dir), ACCOUNTS, url))
            for size in args.sizes:
                extra = max(0, (size - BASE) // (len(ACCOUNTS) * 2))
                reset_moto(url)
                built = build_estate(ACCOUNTS, extra_per_scope=extra)
                accounts = [AccountConfig(name=a.name, profile=a.profile, regions=a.regions) for a in ACCOUNTS]
                rounds = []
                for _ in range(args.rounds):
                    with tempfile.TemporaryDirectory() as home:
                        scratch = ResourceStore(Path(home) / "scratch")  # the engine's status book; never written
                        listing_s, listed = listing_pass(SyncEngine(scratch, embedder.encode, accounts, pool=SessionPool()))
                        scratch.close()
                        store = ResourceStore(Path(home) / "index")
                        pool = SessionPool()
                        moto_before, own_before = cpu_seconds(proc.pid), cpu_seconds(os.getpid())
                        report = SyncEngine(store, embedder.encode, accounts, pool=pool).run()
                        moto_cpu, own_cpu = cpu_seconds(proc.pid) - moto_before, cpu_seconds(os.getpid()) - own_before
                        assert report.ok, report.errors[:3]
                        data = report.as_json()
                        documents = store.count()
                        # The full sync ends by starting the HNSW build in a child process (off the hot path:
                        # searches meanwhile scan exactly). Timed apart, so the re-sync does not share the two
                        # cores with it (it did in the first runs: 95 s of re-sync against a 70 s listing pass).
                        started = time.perf_counter()
                        store.wait_for_optimizer(timeout=3600)
                        hnsw_wait_s = time.perf_counter() - started
                        started = time.perf_counter()
                        again = SyncEngine(store, embedder.encode, accounts, pool=pool).run()
                        resync_s = time.perf_counter() - started
                        assert again.ok and again.as_json()["embedded"] == 0
                        found = every_name_found(store)
                        store.wait_for_optimizer(timeout=3600)
                        store.close()
                    rounds.append({
                        "listing_only_s": listing_s, "listed": listed, "searchable_s": report.searchable_s,
                        "complete_s": report.duration_s, "embedded": data["embedded"], "documents": documents,
                        "resync_s": resync_s, "hnsw_build_after_full_s": hnsw_wait_s, "resync_embedded": again.as_json()["embedded"], "names_found": found,
                        "cpu_s": {"cloudops": own_cpu, "moto_server": moto_cpu},
                        "ratio_searchable_vs_listing": report.searchable_s / listing_s,
                        "ratio_complete_vs_listing": report.duration_s / listing_s,
                        "ratio_resync_vs_full": resync_s / report.duration_s,
                        "load_average": load_average(),
                    })
                    print(size, json.dumps(rounds[-1]), flush=True)

                def median(key: str) -> float:
                    return round(statistics.median(r[key] for r in rounds), 3)

                row = {
                    "resources": built.total, "documents": rounds[-1]["documents"], "embedded_full": rounds[-1]["embedded"],
                    "listing_only_median_s": median("listing_only_s"), "searchable_median_s": median("searchable_s"),
                    "complete_median_s": median("complete_s"), "unchanged_resync_median_s": median("resync_s"),
                    "unchanged_resync_embedded": max(r["resync_embedded"] for r in rounds),
                    "names_found_share": min(r["names_found"] for r in rounds),
                    "ratio_searchable_vs_listing": median("ratio_searchable_vs_listing"),
                    "ratio_complete_vs_listing": median("ratio_complete_vs_listing"),
                    "ratio_resync_vs_full": median("ratio_resync_vs_full"),
                    "full_sync_cpu_s": {"cloudops": round(statistics.median(r["cpu_s"]["cloudops"] for r in rounds), 1),
                                        "moto_server": round(statistics.median(r["cpu_s"]["moto_server"] for r in rounds), 1)},
                    "per_round": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                                   if k in ("listing_only_s", "searchable_s", "complete_s", "resync_s",
                                            "hnsw_build_after_full_s", "load_average")}
                                  for r in rounds],
                    "targets": {"ratio_searchable_vs_listing": "<= 1.3", "ratio_complete_vs_listing": "<= 2.5",
                                "ratio_resync_vs_full": "<= 0.10", "unchanged_resync_embedded": 0},
                }
                results["sizes"][str(size)] = row
                print(size, json.dumps({k: v for k, v in row.items() if k != "rounds"}), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    results["load_average_at_end"] = load_average()
    save_results("sync", results)


if __name__ == "__main__":
    main()
