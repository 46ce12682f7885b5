"""The real ``cloudops`` console script, run as a subprocess: exit codes, JSON output, and the agent
server over a real socket with the local fallback when it is down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import ROOT

CLI = [sys.executable, "-m", "app.interfaces.cli"]


def run(args, home: Path, timeout=180, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def resources_file(tmp_path, seed_resource) -> Path:
    path = tmp_path / "resources.json"
    path.write_text(json.dumps([seed_resource]))
    return path


def test_version_is_instant_and_imports_no_model(tmp_path):
    started = time.perf_counter()
    out = run(["--version"], tmp_path)
    assert out.returncode == 0 and "0.1.0" in out.stdout
    assert time.perf_counter() - started < 20  # generous: the point is no torch import (checked below)
    probe = subprocess.run([sys.executable, "-c", "import sys, app.interfaces.cli; print('torch' in sys.modules)"],
                           capture_output=True, text=True, cwd=ROOT)
    assert probe.stdout.strip() == "False"


def test_playbooks_lists_and_a_bad_directory_names_file_and_field(tmp_path):
    out = run(["playbooks"], tmp_path)
    assert out.returncode == 0 and "playbooks valid" in out.stdout
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "aws_x_y.yaml").write_text((ROOT / "playbooks" / "aws_rds_stop_instance.yaml").read_text())
    out = run(["playbooks", "--dir", str(bad)], tmp_path)
    assert out.returncode == 2 and "aws_x_y.yaml: id:" in out.stderr


def test_plan_offline_json(tmp_path, resources_file):
    out = run(["plan", "Stop pg-instance-main1", "--resources", str(resources_file), "--json", "--offline"], tmp_path)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["served_by"] == "local" and body["classification"]["playbook"] == "aws_rds_stop_instance"


def test_server_answers_and_a_dead_server_falls_back(tmp_path, resources_file):
    port = free_port()
    env = {**os.environ, "CLOUDOPS_HOME": str(tmp_path / "server-home"), "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(CLI + ["server", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/v1/health", timeout=1).json()["status"] == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("server did not come up")
        out = run(["plan", "Stop pg-instance-main1", "--resources", str(resources_file), "--json", "--server", url],
                  tmp_path)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["served_by"] == "server"
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = run(["plan", "Stop pg-instance-main1", "--resources", str(resources_file), "--json", "--server", url],
              tmp_path)
    body = json.loads(out.stdout)
    assert body["served_by"] == "local"
    assert "agent server not used" in body["warnings"][0]


def test_plan_with_a_bad_resources_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps([{"resource_type": "rocket", "resource_id": "x"}]))
    out = run(["plan", "stop x", "--resources", str(bad)], tmp_path)
    assert out.returncode == 2 and "identified_resources.0.resource_type" in out.stderr


def test_demo_runs_the_whole_path_on_moto(tmp_path):
    """`cloudops demo`: moto on loopback, a three-account estate, sync, search, plans."""
    out = run(["demo"], tmp_path / "home", timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "aws rds stop-db-instance --db-instance-identifier pg-instance-main1 --region us-west-2 --profile prod" in out.stdout
    assert "orders-db exists in 2 places" in out.stdout
    assert "Synced 72 scopes" in out.stdout and "0 failed" not in out.stdout
    home = tmp_path / "home"
    status = json.loads(run(["status", "--json"], home).stdout)
    assert status["documents"] > 80 and all(s["last_error"] is None for s in status["scopes"])
    # the index persists in CLOUDOPS_HOME: search works without AWS
    hits = json.loads(run(["search", "pg-instance-main1", "--json"], home).stdout)
    assert hits[0]["name"] == "pg-instance-main1" and hits[0]["tags"]["env"] == "production"
    assert hits[0]["why"] and "score" in hits[0]
    typed = json.loads(run(["search", "orders", "--json", "--type", "sqs_queue", "--limit", "50"], home).stdout)
    assert typed and all(h["resource_type"] == "sqs_queue" for h in typed)
    # no key, not even moto's throwaway one, reaches any file under CLOUDOPS_HOME
    from app.demo.demo_estate import _TEST_KEYS

    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert all(key.encode() not in data for key in _TEST_KEYS), path


def test_app_headless_writes_a_private_endpoint_file_and_serves_with_the_token(tmp_path):
    import signal
    import stat

    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(CLI + ["app", "--headless"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        path = home / "endpoint.json"
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        info = json.loads(path.read_text())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and info["url"].startswith("http://127.0.0.1:")
        for _ in range(100):
            try:
                ok = httpx.get(info["url"] + "/v1/health", headers={"Authorization": f"Bearer {info['token']}"}, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ok.status_code == 200 and ok.json()["role"] == "local"
        assert httpx.get(info["url"] + "/v1/health", timeout=2).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert not (home / "endpoint.json").exists()


def test_keys_without_a_keyring_backend_say_what_to_do_and_write_nothing(tmp_path):
    """No OS keyring (a headless Linux box): storing keys fails with the way out, exit 2, and neither the
    config nor any other file under CLOUDOPS_HOME holds the key."""
    env = {**os.environ, "CLOUDOPS_HOME": str(tmp_path), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    out = subprocess.run([sys.executable, "-m", "app.interfaces.cli", "accounts", "add", "ops", "--region", "us-east-1", "--keys"],
                         input="AKIAFAKEFAKEFAKE1234\nsecret/FAKE+key\n", capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert "no OS keyring backend" in out.stderr and "--profile" in out.stderr and "Traceback" not in out.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"AKIAFAKEFAKEFAKE1234" not in data and b"secret/FAKE+key" not in data


class _BadServer:
    """A real HTTP server on loopback that answers /v1/plan badly, one way per mode."""

    def __init__(self, mode: str):
        import http.server
        import threading

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("content-length", 0)))
                if outer.mode == "slow":
                    time.sleep(3)
                body, status = {"garbage": (b'{"protocol": "v1", "plan": "trust me"}', 200),
                                "not-json": (b"<html>proxy error</html>", 200),
                                "5xx": (b'{"error": "boom"}', 503),
                                "4xx": (b'{"error": "unknown protocol"}', 422),
                                "slow": (b"{}", 200)}[outer.mode]
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.mode = mode
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.mark.parametrize("mode", ["slow", "garbage", "not-json", "5xx", "4xx"])
def test_a_slow_or_garbage_answering_server_is_replaced_by_the_local_stack(tmp_path, resources_file, mode):
    """The agent server times out, answers something that is not a plan, 5xx or refuses: the local stack
    answers, the answer says so, and the CLI never shows a traceback."""
    server = _BadServer(mode)
    try:
        out = subprocess.run(
            CLI + ["plan", "Stop pg-instance-main1", "--resources", str(resources_file), "--server", server.url, "--json"],
            capture_output=True, text=True, timeout=180, cwd=ROOT,
            env={**os.environ, "CLOUDOPS_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "CLOUDOPS_NO_APP": "1",
                 "CLOUDOPS_SERVER_TIMEOUT_S": "1"})
    finally:
        server.close()
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    plan = json.loads(out.stdout)
    assert plan["served_by"] == "local" and plan["classification"]["playbook"] == "aws_rds_stop_instance"
    assert plan["warnings"][0].startswith("agent server not used") and server.url in plan["warnings"][0]
