"""The estate index under faults, with real parts only: moto on loopback with the demo estate (grown
with extra_per_scope so a sync takes seconds), `cloudops` as real subprocesses, SIGKILL, garbage written
over real files, a real lock held on the shard folder, throttling injected with botocore events.

What each test proves is in its name; together: a killed sync leaves a shard that opens, whose every
point is a whole document with its own content hash, and the next sync completes it (every resource,
every meaning vector); a corrupt or locked index is one sentence naming the file and `cloudops index
rebuild`, never a traceback; the rebuild restores every document and never touches audit.db or state.db;
throttling on a third of AWS calls loses and duplicates nothing and shows its retries in `cloudops status
--json`.
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
from app.estate.documents import ResourceDocument
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


def stored(home: Path) -> dict[str, str]:
    """id -> content hash of every document in the shard under ``home`` (opened, then closed)."""
    from app.estate.resource_store import ResourceStore

    store = ResourceStore(home / "index")
    try:
        return {rid: h for rid, (_, h) in store.all_hashes().items()}
    finally:
        store.close()


def assert_consistent(home: Path, *, complete: bool = True) -> int:
    """Open the shard as the next process would, then: every point is a whole document whose id is its
    ARN's point id and whose payload hash is its content's hash, and no id is there twice. ``complete``:
    every point also has its meaning vector, and the sync status counts exactly the documents."""
    from app.estate.resource_store import ResourceStore, point_id

    store = ResourceStore(home / "index")
    try:
        pids, count = [], 0
        for pid, payload in store._scroll(None, ["document", "content_hash", "id"]):
            doc = ResourceDocument.model_validate_json(payload["document"])  # no half-written document
            assert doc.id == payload["id"] and pid == point_id(doc.id), (pid, doc.id)
            assert doc.content_hash == payload["content_hash"] == doc.model_copy().finalise().content_hash
            pids.append(pid)
            count += 1
        assert len(pids) == len(set(pids)) == store.count(), "duplicate points"
        if complete:
            assert store.semantic_pending() == 0
            assert store.synced_count() == count
        return count
    finally:
        store.close()


def wal_bytes(home: Path) -> int:
    return sum(f.stat().st_size for f in (home / "index" / "edge").rglob("wal/*") if f.is_file())


def test_sigkill_mid_sync_then_restart_leaves_a_consistent_index_and_the_next_sync_completes(estate):
    home, env = estate["home"], estate["env"]
    proc = subprocess.Popen(CLI + ["sync", "--json"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed_in_write = False
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            # Points are being written (the shard's write-ahead log grows) and the sync is not done.
            if (home / "index" / "edge" / "CURRENT").exists() and wal_bytes(home) > 64 * 1024:
                proc.send_signal(signal.SIGKILL)
                killed_in_write = True
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and not killed_in_write:
            proc.kill()
        proc.wait(timeout=30)
    assert killed_in_write, "the sync ended before its writes could be interrupted (grow EXTRA_PER_SCOPE)"
    assert proc.returncode == -signal.SIGKILL

    partial = assert_consistent(home, complete=False)
    out = cli(env, "sync", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["errors"] == [] and report["semantic_pending"] == 0
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
    ids_before = set(stored(home))
    _seed_approvals_and_audit(home)
    db = home / "index" / "resources.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database " * 4096)

    for args in (["status", "--json"], ["search", "pg-instance-main1"], ["sync", "--json"],
                 ["plan", "Stop pg-instance-main1", "--json", "--offline"]):
        assert_one_sentence(cli(env, *args), str(db))

    protected = _protected(home)
    out = cli(env, "index", "rebuild", "--json", "--yes")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["replaced"] and report["previous_documents"] is None  # the old index could not be opened
    assert report["errors"] == [] and report["added"] == before
    assert set(stored(home)) == ids_before
    assert _protected(home) == protected  # audit.db, state.db, config.yaml byte for byte
    assert assert_consistent(home) == before
    status = json.loads(cli(env, "status", "--json").stdout)
    assert status["documents"] == before


def test_corrupt_shard_files_are_one_sentence_naming_them_and_rebuild_restores_them(estate):
    home, env = estate["home"], estate["env"]
    before = len(stored(home))
    edge = home / "index" / "edge"
    shard = edge / (edge / "CURRENT").read_text().strip()

    config = shard / "edge_config.json"  # every command checks it, even those that read SQLite only
    saved = config.read_bytes()
    config.write_text("{garbage")
    for args in (["status", "--json"], ["search", "pg-instance-main1"], ["sync", "--json"]):
        assert_one_sentence(cli(env, *args), str(config))
    config.write_bytes(saved)

    pointer = edge / "CURRENT"
    pointer.write_text("../../etc")
    assert_one_sentence(cli(env, "status"), str(pointer))
    pointer.write_text(shard.name + "\n")

    # A segment's payload pages: Edge finds it when the shard opens; the sentence names the shard.
    pages = next(shard.rglob("payload_storage/page_0.dat"))
    pages.write_bytes(os.urandom(pages.stat().st_size or 4096))
    for args in (["search", "pg-instance-main1"], ["sync", "--json"]):
        assert_one_sentence(cli(env, *args), str(shard))

    protected = _protected(home)
    out = cli(env, "index", "rebuild", "--json", "--yes")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["added"] == before
    assert assert_consistent(home) == before
    assert _protected(home) == protected


def test_shard_held_by_another_process_is_one_sentence_and_rebuild_refuses(estate):
    from app.estate.resource_store import ResourceStore

    home, env = estate["home"], estate["env"]
    holder = ResourceStore(home / "index").open()  # this process owns the shard
    try:
        for args in (["sync", "--json"], ["search", "pg-instance-main1"]):
            assert_one_sentence(cli(env, *args), str(home / "index" / "edge"))
        refused = cli(env, "index", "rebuild", "--yes")
        assert refused.returncode == 2 and "Traceback" not in refused.stderr and "another CloudOps process" in refused.stderr
        assert (home / "index" / "resources.db").exists() and (home / "index" / "edge").exists()  # nothing dropped
        status = cli(env, "status", "--json")  # SQLite only: works beside the owner
        assert status.returncode == 0 and json.loads(status.stdout)["documents"] > 0
    finally:
        holder.close()


def test_resources_db_locked_by_another_writer_is_one_sentence_naming_it(estate):
    """Another process holds resources.db's write lock (a stuck sync, a DB browser): the sync waits the busy
    timeout, then says so in one sentence naming the file; the documents are untouched."""
    home, env = estate["home"], {**estate["env"], "CLOUDOPS_SQLITE_TIMEOUT_S": "1"}
    if not (home / "index" / "resources.db").exists():
        assert cli(estate["env"], "sync").returncode == 0
    before = stored(home)
    holder = sqlite3.connect(home / "index" / "resources.db", timeout=1)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        out = cli(env, "sync", "--json", "--full")
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert "resources.db is locked" in out.stderr and REBUILD in out.stderr, out.stderr[-2000:]
    finally:
        holder.rollback()
        holder.close()
    assert stored(home) == before


def test_throttling_on_a_third_of_calls_loses_and_duplicates_nothing_and_status_shows_retries(estate, tmp_path,
                                                                                                 monkeypatch):
    """Same estate, a fresh index, every third AWS call answered 503 (botocore's throttling path)."""
    from botocore.awsrequest import AWSResponse

    from app import awsclient
    from app.estate.estate import Estate
    from test_sync import _Raw

    reference = stored(estate["home"])
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
    synced = stored(home)
    assert set(synced) == set(reference), ("missing", set(reference) - set(synced), "extra", set(synced) - set(reference))
    assert assert_consistent(home) == len(reference)  # nothing lost or duplicated

    status = json.loads(cli({**estate["env"], "CLOUDOPS_HOME": str(home)}, "status", "--json").stdout)
    assert status["documents"] == len(reference)
    assert sum(s["retries"] for s in status["scopes"]) >= calls["throttled"] * 0.5
    assert all(s["last_error"] is None for s in status["scopes"])


def test_no_access_key_or_secret_in_any_file_under_cloudops_home_after_syncs_crash_and_rebuilds(estate):
    """Every byte under CLOUDOPS_HOME (index, shard files, status, audit, approvals, config) after a
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


# -- rebuild: a new index beside the old one, swapped in only when complete ---------------------------

def index_bytes(home: Path) -> dict[str, bytes]:
    """Every file under index/, byte for byte: what "nothing was touched" means."""
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted((home / "index").rglob("*")) if p.is_file()}


def assert_sentence(out: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert out.returncode == code, (out.returncode, out.stdout[-500:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    for needle in needles:
        assert needle in out.stderr, (needle, out.stderr)


def _synced(estate) -> dict[str, str]:
    home, env = estate["home"], estate["env"]
    if not (home / "index").exists() or not stored(home):
        assert cli(env, "sync").returncode == 0
    return stored(home)


def test_rebuild_refusals_say_why_in_one_sentence_and_touch_nothing(estate):
    """No terminal and no --yes; a malformed config.yaml; accounts that cannot be reached (right after the
    demo: its profiles are gone with its simulated AWS). Each is one sentence and the index stays byte for byte."""
    home, env = estate["home"], estate["env"]
    documents = _synced(estate)
    before = index_bytes(home)

    assert_sentence(cli(env, "index", "rebuild"), 3, "no terminal", "--yes")
    assert index_bytes(home) == before

    config = home / "config.yaml"
    saved = config.read_bytes()
    config.write_text(saved.decode() + "  - name: [broken\n")
    try:
        assert_sentence(cli(env, "index", "rebuild", "--yes"), 2, str(config), "line ")
    finally:
        config.write_bytes(saved)
    assert index_bytes(home) == before

    no_demo_aws = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    out = cli(no_demo_aws, "index", "rebuild", "--yes")
    assert_sentence(out, 2, "'prod'", "'staging'", "'dev'", "cloudops demo --serve", "not touched")
    assert "ProfileNotFound" not in out.stdout + out.stderr
    assert index_bytes(home) == before and stored(home) == documents


def test_an_interrupted_or_killed_rebuild_leaves_the_old_index_working(estate):
    """Ctrl+C (SIGINT) while the new index is being made: it is deleted, the sentence says the old one is
    unchanged. SIGKILL: the half-made one stays beside the old one until the next rebuild clears it. Either way
    the old index answers searches with every document it had."""
    home, env = estate["home"], estate["env"]
    documents = _synced(estate)
    build = home / "index.rebuild"
    for sig in (signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen(CLI + ["index", "rebuild", "--yes"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not (build / "resources.db").exists():
            time.sleep(0.01)
        time.sleep(0.5)  # well inside the full sync (several seconds at EXTRA_PER_SCOPE)
        assert proc.poll() is None, "the rebuild ended before it could be interrupted (grow EXTRA_PER_SCOPE)"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=300)
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
            assert "interrupted" in stderr and "old index is unchanged" in stderr, stderr
            assert not build.exists()
        else:
            assert proc.returncode == -signal.SIGKILL and build.exists()
        assert stored(home) == documents
        hits = json.loads(cli(env, "search", "pg-instance-main1", "--json").stdout)
        assert hits[0]["name"] == "pg-instance-main1"

    out = cli(env, "index", "rebuild", "--yes", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["replaced"] and report["previous_documents"] == len(documents) and report["added"] == len(documents)
    assert not build.exists() and stored(home) == documents


def test_a_rebuild_with_a_failing_scope_keeps_the_old_index(estate, monkeypatch):
    """AWS refuses one service in one account during the rebuild: the new index would lack it, so the old one
    is kept whole and the new one deleted."""
    from botocore.awsrequest import AWSResponse

    from app import awsclient
    from app.config import load_config
    from app.estate.index_admin import build, preflight
    from test_sync import _Raw

    home = estate["home"]
    documents = _synced(estate)
    monkeypatch.setenv("CLOUDOPS_HOME", str(home))

    def deny(params, **kwargs):
        error = {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"},
                 "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse("https://sqs", 400, {}, _Raw(b"")), error

    def hook(client, account_name):
        if account_name == "staging" and client.meta.service_model.service_name == "sqs":
            client.meta.events.register("before-call.sqs.ListQueues", deny)

    monkeypatch.setattr(awsclient, "CLIENT_HOOKS", [hook])
    config = load_config(home / "config.yaml")
    outcome = build(preflight(home, config), config)
    assert not outcome.replaced and "failed" in outcome.kept_because
    assert {(e["account"], e["service"]) for e in outcome.report["errors"]} == {("staging", "sqs")}
    assert stored(home) == documents and not (home / "index.rebuild").exists()


def test_rebuild_asks_first_on_a_terminal(estate):
    """On a terminal the rebuild asks (y/N): Enter or "n" keeps everything; "y" rebuilds."""
    import pty
    import select

    home, env = estate["home"], estate["env"]
    documents = _synced(estate)

    def answered(answer: str) -> tuple[int, str]:
        master, slave = pty.openpty()
        proc = subprocess.Popen(CLI + ["index", "rebuild"], env=env, cwd=ROOT, stdin=slave, stdout=slave,
                                stderr=slave, close_fds=True)
        os.close(slave)
        seen, asked = b"", False
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the process closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                if not asked and b"[y/N]" in seen:
                    os.write(master, answer.encode() + b"\n")
                    asked = True
            elif proc.poll() is not None:
                break
        proc.wait(timeout=300)
        os.close(master)
        assert asked, seen.decode(errors="replace")
        return proc.returncode, seen.decode(errors="replace")

    code, text = answered("n")
    assert code == 3 and "nothing was touched" in text and "Traceback" not in text, text
    assert "stays in use until the new one is complete" in text
    assert stored(home) == documents and not (home / "index.rebuild").exists()
    code, text = answered("y")
    assert code == 0 and "rebuilt the index" in text, text
    assert stored(home) == documents
