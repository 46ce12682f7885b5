"""The estate index under faults, with real parts only: moto on loopback with the demo estate (grown
with extra_per_scope so a sync takes seconds), `cloudops` as real subprocesses, SIGKILL, garbage written
over real files, a real lock held on the Qdrant folder, throttling injected with botocore events.

What each test proves is in its name; together: a killed sync leaves an index that the next writer makes
consistent (SQLite and Qdrant hold the same ids and contents, no half-written document) and the next sync
completes; a corrupt or locked index is one sentence naming the file and `cloudops index rebuild`, never a
traceback; the rebuild restores every document and never touches audit.db or state.db; throttling on a
third of AWS calls loses and duplicates nothing and shows its retries in `cloudops status --json`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.demo.demo_estate import demo_config, simulated_estate
from conftest import ROOT

CLI = [sys.executable, "-m", "app.interfaces.cli"]
EXTRA_PER_SCOPE = 20  # ~210 documents: a cold sync takes several seconds on 2 cores
REBUILD = "cloudops index rebuild"


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    """moto with the demo estate, and a CLOUDOPS_HOME whose config.yaml names its accounts."""
    from app.config import save_config

    home = tmp_path_factory.mktemp("faults-home")
    with simulated_estate(extra_per_scope=EXTRA_PER_SCOPE) as (endpoint, summary):
        save_config(demo_config(), home / "config.yaml")
        env = {**os.environ, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost"}
        env.pop("DISPLAY", None)
        yield {"home": home, "env": env, "summary": summary, "endpoint": endpoint}


def cli(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
                          stdin=subprocess.DEVNULL)


def sqlite_rows(index: Path) -> dict[str, tuple[str, str]]:
    """id -> (content_hash, document JSON) read straight from resources.db, read-only."""
    with sqlite3.connect(f"file:{index / 'resources.db'}?mode=ro", uri=True) as conn:
        return {rid: (h, doc) for rid, h, doc in conn.execute("SELECT id, content_hash, document FROM resource")}


def assert_consistent(home: Path) -> int:
    """Open the store as a writer (which reconciles after a crash), then: no duplicate ids, every SQLite
    document parses and has its Qdrant point with the same content hash, and no Qdrant point lacks its row."""
    from app.estate.documents import ResourceDocument
    from app.estate.resource_store import COLLECTION, ResourceStore, point_id

    store = ResourceStore(home / "index")
    try:
        store.qdrant  # noqa: B018 - the restart: the next writer to open the index
        assert not (home / "index" / ".writing").exists()
        rows = sqlite_rows(home / "index")
        for rid, (content_hash, document) in rows.items():
            doc = ResourceDocument.model_validate_json(document)  # no half-written document
            assert doc.id == rid and doc.content_hash == content_hash
        expected = {point_id(rid): h for rid, (h, _) in rows.items()}
        points, payloads, offset = [], {}, None
        while True:
            batch, offset = store.qdrant.scroll(COLLECTION, limit=1024, offset=offset, with_payload=["content_hash"])
            points += [str(p.id) for p in batch]
            payloads.update({str(p.id): p.payload["content_hash"] for p in batch})
            if offset is None:
                break
        assert len(points) == len(set(points)), "duplicate Qdrant points"
        assert set(points) == set(expected), (len(set(points) - set(expected)), len(set(expected) - set(points)))
        assert payloads == expected
        return len(rows)
    finally:
        store.close()


def test_sigkill_mid_sync_then_restart_leaves_a_consistent_index_and_the_next_sync_completes(estate):
    home, env = estate["home"], estate["env"]
    marker = home / "index" / ".writing"
    proc = subprocess.Popen(CLI + ["sync", "--json"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed_in_write = False
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if marker.exists():  # Qdrant is being written, SQLite not yet committed: the worst moment
                proc.send_signal(signal.SIGKILL)
                killed_in_write = True
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and not killed_in_write:
            proc.kill()
        proc.wait(timeout=30)
    assert killed_in_write, "the sync ended before a scope write could be interrupted (grow EXTRA_PER_SCOPE)"
    assert proc.returncode == -signal.SIGKILL
    assert marker.exists()  # the crash left its mark: the next writer must reconcile
    partial = len(sqlite_rows(home / "index"))

    assert_consistent(home)
    out = cli(env, "sync", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["errors"] == []
    total = assert_consistent(home)
    assert total > partial and total >= 6 * EXTRA_PER_SCOPE
    estate["documents"] = total  # the rebuild test checks a from-scratch sync finds exactly as many


def _seed_approvals_and_audit(home: Path) -> None:
    """A real audit trail and approval book beside the index (what a rebuild must never touch)."""
    from app.execution.audit import AuditTrail

    audit = AuditTrail(home / "audit.db")
    audit.record("plan", request_id="r-1", prompt="stop pg-instance-main1", plan_hash="h" * 64,
                 detail="aws_rds_stop_instance")
    audit.close()
    from app.execution.approvals import ApprovalBook

    book = ApprovalBook(home / "state.db")
    book.engine.dispose()


def _protected(home: Path) -> dict[str, bytes]:
    """The files a rebuild must not touch, byte for byte (WAL checkpointed first, so bytes mean content)."""
    for name in ("audit.db", "state.db"):
        conn = sqlite3.connect(home / name)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    return {name: (home / name).read_bytes() for name in ("audit.db", "state.db", "config.yaml")}


def assert_one_sentence(out: subprocess.CompletedProcess, names: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr and names in out.stderr and REBUILD in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_corrupt_resources_db_is_one_sentence_for_every_command_and_rebuild_restores_it(estate):
    home, env = estate["home"], estate["env"]
    before = estate.get("documents") or assert_consistent(home)
    ids_before = set(sqlite_rows(home / "index"))
    _seed_approvals_and_audit(home)
    db = home / "index" / "resources.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database " * 4096)

    for args in (["status", "--json"], ["search", "pg-instance-main1"], ["sync", "--json"],
                 ["plan", "Stop pg-instance-main1", "--json", "--offline"]):
        assert_one_sentence(cli(env, *args), str(db))

    protected = _protected(home)
    out = cli(env, "index", "rebuild", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert str(db) in report["removed_files"] and report["errors"] == [] and report["added"] == before
    assert set(sqlite_rows(home / "index")) == ids_before
    assert _protected(home) == protected  # audit.db, state.db, config.yaml byte for byte
    assert assert_consistent(home) == before
    status = json.loads(cli(env, "status", "--json").stdout)
    assert status["documents"] == before


def test_corrupt_qdrant_file_is_one_sentence_naming_it_and_rebuild_restores_it(estate):
    home, env = estate["home"], estate["env"]
    before = len(sqlite_rows(home / "index"))
    storage = next((home / "index" / "qdrant").rglob("storage.sqlite"))
    storage.write_bytes(os.urandom(64 * 1024))

    for args in (["status", "--json"], ["search", "pg-instance-main1"], ["sync", "--json"]):
        assert_one_sentence(cli(env, *args), str(storage))
    meta = home / "index" / "qdrant" / "meta.json"
    saved_meta = meta.read_bytes()
    meta.write_text("{garbage")
    assert_one_sentence(cli(env, "status"), str(meta))
    meta.write_bytes(saved_meta)

    protected = _protected(home)
    out = cli(env, "index", "rebuild", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["added"] == before
    assert assert_consistent(home) == before
    assert _protected(home) == protected


def test_qdrant_folder_locked_by_another_process_is_one_sentence_and_rebuild_refuses(estate):
    from qdrant_client import QdrantClient

    home, env = estate["home"], estate["env"]
    holder = QdrantClient(path=str(home / "index" / "qdrant"))  # this process holds the folder's lock
    try:
        assert_one_sentence(cli(env, "sync", "--json"), str(home / "index" / "qdrant"))
        refused = cli(env, "index", "rebuild")
        assert refused.returncode == 2 and "Traceback" not in refused.stderr and "another CloudOps process" in refused.stderr
        assert (home / "index" / "resources.db").exists()  # nothing was dropped
    finally:
        holder.close()


def test_resources_db_locked_by_another_writer_is_one_sentence_naming_it(estate):
    """Another process holds resources.db's write lock (a stuck sync, a DB browser): the sync waits the busy
    timeout, then says so in one sentence naming the file; the documents are untouched."""
    home, env = estate["home"], {**estate["env"], "CLOUDOPS_SQLITE_TIMEOUT_S": "1"}
    if not (home / "index" / "resources.db").exists():
        assert cli(estate["env"], "sync").returncode == 0
    before = sqlite_rows(home / "index")
    holder = sqlite3.connect(home / "index" / "resources.db", timeout=1)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        out = cli(env, "sync", "--json", "--full")
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert "resources.db is locked" in out.stderr and REBUILD in out.stderr, out.stderr[-2000:]
    finally:
        holder.rollback()
        holder.close()
    assert sqlite_rows(home / "index") == before


def test_throttling_on_a_third_of_calls_loses_and_duplicates_nothing_and_status_shows_retries(estate, tmp_path,
                                                                                                 monkeypatch):
    """Same estate, a fresh index, every third AWS call answered 503 (botocore's throttling path)."""
    from botocore.awsrequest import AWSResponse

    from app import awsclient
    from app.estate.estate import Estate
    from test_sync import _Raw

    reference = {rid: h for rid, (h, _) in sqlite_rows(estate["home"] / "index").items()}
    calls = {"n": 0, "throttled": 0}

    def throttle(request, **kwargs):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            calls["throttled"] += 1
            return AWSResponse(request.url, 503, {}, _Raw(b""))
        return None

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_bytes((estate["home"] / "config.yaml").read_bytes())
    monkeypatch.setenv("CLOUDOPS_HOME", str(home))
    monkeypatch.setattr(awsclient, "CLIENT_HOOKS", [lambda client, _: client.meta.events.register_first("before-send", throttle)])
    monkeypatch.setattr(awsclient, "RETRY_ATTEMPTS", 10)
    est = Estate()
    try:
        report = est.engine().run()
    finally:
        est.close()
    assert report.ok, report.errors
    assert calls["throttled"] >= calls["n"] // 3 > 0
    synced = {rid: h for rid, (h, _) in sqlite_rows(home / "index").items()}
    assert set(synced) == set(reference), ("missing", set(reference) - set(synced), "extra", set(synced) - set(reference))
    assert assert_consistent(home) == len(reference)  # nothing duplicated in SQLite or Qdrant

    status = json.loads(cli({**estate["env"], "CLOUDOPS_HOME": str(home)}, "status", "--json").stdout)
    assert status["documents"] == len(reference)
    assert sum(s["retries"] for s in status["scopes"]) >= calls["throttled"] * 0.5
    assert all(s["last_error"] is None for s in status["scopes"])


def test_no_access_key_or_secret_in_any_file_under_cloudops_home_after_syncs_crash_and_rebuilds(estate):
    """Every byte under CLOUDOPS_HOME (index, Qdrant storage, status, audit, approvals, config) after a
    killed sync, two rebuilds and the throttled sync: neither the source profile's keys nor any access
    key id (AKIA/ASIA, e.g. the STS keys of the assumed roles) was ever written."""
    import re

    from app.demo.demo_estate import _TEST_KEYS

    pattern = re.compile(rb"(?:AKIA|ASIA)[A-Z0-9]{16}")
    files = [p for p in estate["home"].rglob("*") if p.is_file()]
    assert any(p.name == "resources.db" for p in files) and any(p.name == "audit.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in _TEST_KEYS:
            assert secret.encode() not in data, path
        assert not pattern.search(data), (path, pattern.search(data).group())
