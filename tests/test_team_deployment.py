"""What of a team deployment runs on one machine: `cloudops server --workers 2` (real uvicorn worker
processes) sharing one playbook metadata DB given by a SQLModel URL (CLOUDOPS_METADATA_DB_URL; here a
sqlite:/// URL in another folder, where a team would give postgresql+psycopg://...), and the estate
store mirroring its collection to a Qdrant location it is given (a folder here, a Qdrant server URL in a
team). A Qdrant server itself is not run here (no binary on this machine); docs/DEPLOYMENT.md says how.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import numpy as np

from conftest import ROOT, EVAL_DIR


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path, db_url: str, workers: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CLOUDOPS_METADATA_DB_URL": db_url,
           "CLOUDOPS_HOME": str(tmp_path / "home"), "NO_PROXY": "127.0.0.1,localhost"}
    proc = subprocess.Popen([sys.executable, "-m", "app.interfaces.cli", "server", "--port", str(port), "--workers", str(workers)],
                            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / f"server-{workers}.log", "w"), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / f"server-{workers}.log").read_text()[-3000:]
        try:
            if httpx.get(url + "/v1/health", timeout=2).json()["status"] == "ok":
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError("server not healthy")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def test_two_server_workers_share_a_metadata_db_given_by_url_in_another_folder(tmp_path):
    from agent.evaluation import load_cases, request_for

    shared = tmp_path / "team-db"
    shared.mkdir()
    db = shared / "playbooks.db"
    estate, cases = load_cases(EVAL_DIR)
    bodies = [request_for(c, estate).model_dump_json() for c in cases[:40]]
    proc, url = _serve(tmp_path, f"sqlite:///{db}", workers=2)
    try:
        def plan(body: str) -> int:
            return httpx.post(url + "/v1/plan", content=body, headers={"content-type": "application/json"},
                              timeout=120).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:  # spread over both workers' shared socket
            codes = list(pool.map(plan, bodies))
        assert codes == [200] * len(bodies)
    finally:
        _stop(proc)
    with sqlite3.connect(db) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        records = conn.execute("SELECT COUNT(*) FROM playbook").fetchone()[0]
    assert {"playbook", "utterance_vector"} <= tables
    assert records == len(list((ROOT / "playbooks").glob("*.yaml")))
    assert not (tmp_path / "home" / "agent").exists()  # nothing went to a per-user cache instead

    # A restarted server on the same URL finds the cache warm: the rows are the ones written before.
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT id, content_hash FROM playbook ORDER BY id").fetchall()
    proc, url = _serve(tmp_path, f"sqlite:///{db}", workers=1)
    try:
        assert httpx.post(url + "/v1/plan", content=bodies[0], headers={"content-type": "application/json"},
                          timeout=120).status_code == 200
    finally:
        _stop(proc)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id, content_hash FROM playbook ORDER BY id").fetchall() == before


def test_the_estate_store_mirrors_the_collection_to_the_qdrant_it_is_told(tmp_path):
    """ResourceStore(qdrant_location=...) mirrors every write to that Qdrant through qdrant-client (a server
    URL in a team; a folder here, qdrant-client's local mode, since no server runs on this machine): the same
    point ids, payload schema and named vectors as the local Edge shard, deletions and meaning vectors too."""
    from qdrant_client import QdrantClient

    from app.estate.documents import ResourceDocument
    from app.estate.resource_store import COLLECTION, DENSE, NAMES, WORDS, ResourceStore, point_id

    def queue(name: str) -> ResourceDocument:
        arn = f"arn:aws:sqs:us-east-1:111111111111:{name}"
        return ResourceDocument(id=arn, arn=arn, resource_type="sqs_queue", service="sqs", resource_id=name, name=name,
                                account_id="111111111111", account_name="production", region="us-east-1",
                                tags={"env": "prod"}).finalise()

    elsewhere = tmp_path / "qdrant-elsewhere"
    scope = "111111111111/us-east-1/sqs"
    q1, q2 = queue("q1"), queue("q2")
    store = ResourceStore(tmp_path / "index", qdrant_location=str(elsewhere))
    try:
        store.apply_scope(scope, [q1, q2], {q1.id: np.ones(384, dtype=np.float32), q2.id: np.ones(384, dtype=np.float32)})
        store.apply_scope(scope, [q1])  # q2 is gone
        local = store.shard.retrieve([point_id(q1.id)], with_payload=True, with_vector=False)[0].payload
        assert store.mirror_error is None
    finally:
        store.close()
    assert (elsewhere / "meta.json").exists() and (tmp_path / "index" / "edge").exists()
    team = QdrantClient(path=str(elsewhere))
    try:
        points = team.retrieve(COLLECTION, [point_id(q1.id), point_id(q2.id)], with_payload=True, with_vectors=True)
        assert [p.id for p in points] == [point_id(q1.id)]
        assert points[0].payload == local and points[0].payload["name"] == "q1"
        assert set(points[0].vector) == {DENSE, WORDS, NAMES}
    finally:
        team.close()


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL cluster on loopback (Debian's postgresql package), trust auth, one database."""
    import glob
    import pwd
    import shutil
    import tempfile

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; packaging/system-deps.sh)")
    bindir = os.path.dirname(bins[-1])
    root = tempfile.mkdtemp(prefix="cloudops-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = os.path.join(root, "data")
    subprocess.run(as_user + [f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(root, "log"), "-o",
                              f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True,
                   capture_output=True)
    try:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE cloudops")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/cloudops"
    finally:
        subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_server_workers_share_a_postgres_metadata_db(tmp_path, postgres):
    """The team deployment's metadata DB on a real PostgreSQL: two workers start against one empty
    database at once, serve concurrent plans, and leave one row per playbook."""
    import psycopg

    from agent.evaluation import load_cases, request_for

    estate, cases = load_cases(EVAL_DIR)
    bodies = [request_for(c, estate).model_dump_json() for c in cases[:30]]
    proc, url = _serve(tmp_path, postgres, workers=2)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(lambda body: httpx.post(url + "/v1/plan", content=body, timeout=120,
                                                          headers={"content-type": "application/json"}).status_code,
                                  bodies))
        assert codes == [200] * len(bodies)
    finally:
        _stop(proc)
    with psycopg.connect(postgres.replace("postgresql+psycopg", "postgresql")) as conn:
        playbooks = conn.execute("SELECT COUNT(*) FROM playbook").fetchone()[0]
        vectors = conn.execute("SELECT COUNT(DISTINCT point_id), COUNT(*) FROM utterance_vector").fetchone()
    assert playbooks == len(list((ROOT / "playbooks").glob("*.yaml")))
    assert vectors[0] == vectors[1] > playbooks


def _race_table_creation(url: str, drop, list_tables, engines: int = 6, rounds: int = 4) -> None:
    """Several engines create the metadata tables of one empty database at the same instant, ``rounds``
    times; every one must succeed and the tables must be there."""
    import threading

    from sqlmodel import create_engine

    from agent.playbook_index import _create_tables

    for round_ in range(rounds):
        drop()
        racers = [create_engine(url) for _ in range(engines)]
        start, errors = threading.Barrier(len(racers)), []

        def create(engine):
            start.wait()
            try:
                _create_tables(engine)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

        threads = [threading.Thread(target=create, args=(e,)) for e in racers]
        [t.start() for t in threads]
        [t.join() for t in threads]
        [e.dispose() for e in racers]
        assert errors == [], f"round {round_}: {errors[:2]}"
        assert {"playbook", "utterance_vector"} <= list_tables()


def test_workers_creating_the_metadata_tables_at_once_all_succeed(postgres):
    """The race behind a once-flaky start: several workers create the tables of one empty PostgreSQL
    database at the same instant; the losers' CREATE TABLE fails in PostgreSQL's catalogue and must be
    taken as "someone else made it"."""
    import psycopg

    base = postgres.replace("postgresql+psycopg", "postgresql")

    def drop():
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS utterance_vector, playbook")

    def list_tables():
        with psycopg.connect(base) as conn:
            return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}

    _race_table_creation(postgres, drop, list_tables)


def test_workers_creating_the_tables_of_one_sqlite_file_at_once_all_succeed(tmp_path):
    """The same race on a shared SQLite file (it failed a CI run: the loser's CREATE TABLE is an
    OperationalError, "table playbook already exists", not PostgreSQL's IntegrityError)."""
    db = tmp_path / "playbooks.db"

    def list_tables():
        with sqlite3.connect(db) as conn:
            return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    _race_table_creation(f"sqlite:///{db}", lambda: db.unlink(missing_ok=True), list_tables, rounds=20)
