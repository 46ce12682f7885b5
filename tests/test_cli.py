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


def run(args, home: Path, timeout=180, env_extra: dict | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1", **(env_extra or {})}
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


# -- nothing lost, nothing cryptic (issue 15, item 9) ------------------------------------------------------

def one_sentence(out: subprocess.CompletedProcess, code: int = 2) -> str:
    """The command failed with exactly one line on stderr and no traceback; returns that line."""
    assert out.returncode == code, (out.returncode, out.stdout[-1000:], out.stderr[-3000:])
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    lines = [line for line in out.stderr.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1, out.stderr
    return lines[0]


# Every command that reads CLOUDOPS_HOME, with the arguments a newcomer would type.
HOME_COMMANDS = {
    "plan": ["plan", "Stop pg-instance-main1", "--offline"],
    "run": ["run", "Stop pg-instance-main1"],
    "app": ["app", "--headless"],
    "accounts list": ["accounts", "list"],
    "accounts add": ["accounts", "add", "ops", "--region", "us-east-1"],
    "sync": ["sync"],
    "search": ["search", "pg-instance-main1"],
    "status": ["status"],
    "audit": ["audit"],
    "index rebuild": ["index", "rebuild", "--yes"],
    "demo": ["demo"],
}
BROKEN_CONFIGS = {
    "yaml": ("accounts:\n  - name: prod\n    regions: [us-east-1\n", "line 3"),
    "field": ("accounts:\n  - name: prod\n    profile: prod\n    regions: [us-east-x]\n", "line 4"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_CONFIGS))
@pytest.mark.parametrize("command", sorted(set(HOME_COMMANDS) - {"audit"}))
def test_a_malformed_config_is_one_sentence_from_every_command_and_nothing_is_touched(tmp_path, command, kind):
    """config.yaml that is not YAML, or names a region that is not one: every command says so in one sentence
    naming the file, the line and the field, and what to do; the file and the folder are left as they were
    (`accounts add` does not rewrite the file, the demo does not replace it, the rebuild drops nothing)."""
    text, line = BROKEN_CONFIGS[kind]
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.yaml").write_text(text)
    out = run(HOME_COMMANDS[command], home, timeout=120, stdin=subprocess.DEVNULL)
    sentence = one_sentence(out)
    assert str(home / "config.yaml") in sentence and line in sentence, sentence
    if kind == "field":
        assert "accounts.0.regions" in sentence and "us-east-x" in sentence
    assert "fix" in sentence  # what to do
    assert (home / "config.yaml").read_text() == text
    assert sorted(p.name for p in home.iterdir()) == ["config.yaml"]


def _unusable_ways(tmp_path: Path) -> dict:
    """Ways a CLOUDOPS_HOME cannot be used, each (folder, how to run a command there), all of them real:
    permission bits that bind this process (as root, with the capabilities that bypass them dropped), a
    read-only bind mount in a private mount namespace, and a file where the folder should be."""
    import shutil

    ways = {}
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            prefix = None
        else:  # root ignores permission bits through these two capabilities; without them it is bound by them
            prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    for mode in (0o500, 0o000):
        if prefix is not None:
            ways[f"chmod {mode:04o}"] = (tmp_path / f"home-{mode:o}", mode, prefix)
    if os.geteuid() == 0 and shutil.which("unshare"):
        probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
        if probe.returncode == 0:
            ways["read-only mount"] = (tmp_path / "home-ro", "ro", None)
    ways["a file"] = (tmp_path / "home-file", "file", [])
    return ways


def _run_in(home: Path, how, prefix, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    command = CLI + args
    if how == "ro":  # a private mount namespace: the folder is bound onto itself read-only for this command only
        import shlex

        script = (f"mount --bind {shlex.quote(str(home))} {shlex.quote(str(home))} && "
                  f"mount -o remount,ro,bind {shlex.quote(str(home))} && exec {shlex.join(command)}")
        command = ["unshare", "--mount", "sh", "-c", script]
    else:
        command = prefix + command
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
                          stdin=subprocess.DEVNULL)


def test_an_unusable_cloudops_home_is_one_sentence_naming_it_from_every_command(tmp_path):
    """A folder that cannot be written (0500, a read-only mount), cannot be read (0000), or is a file: every
    command names the folder in one sentence and says what to do; never a sqlite or PermissionError traceback."""
    ways = _unusable_ways(tmp_path)
    assert "chmod 0500" in ways or os.geteuid() != 0, "setpriv is needed to check permission bits as root"
    for way, (home, how, prefix) in ways.items():
        if how == "file":
            home.write_text("not a folder")
        else:  # a real home first: config, audit trail and approvals made by the CLI itself
            assert run(["accounts", "add", "ops", "--region", "us-east-1"], home).returncode == 0
            assert run(["audit"], home).returncode == 0
            if how != "ro":
                home.chmod(how)
        try:
            for command, args in HOME_COMMANDS.items():
                sentence = one_sentence(_run_in(home, how, prefix, args))
                assert str(home) in sentence, (way, command, sentence)
                assert "CLOUDOPS_HOME" in sentence, (way, command, sentence)
                assert {"chmod 0500": "chmod u+rwx", "chmod 0000": "chmod u+rwx", "read-only mount": "read-only",
                        "a file": "move the file"}[way] in sentence, (way, command, sentence)
        finally:
            if how not in ("file", "ro"):
                home.chmod(0o700)


def test_empty_audit_says_no_events_yet_and_json_is_an_empty_list(tmp_path):
    out = run(["audit"], tmp_path)
    assert out.returncode == 0 and "no events yet" in out.stdout
    out = run(["audit", "--json"], tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout) == []


def test_sync_headlines_what_failed_and_says_it_once_per_account(tmp_path):
    """Three accounts on moto: one fine, one through a profile that does not exist (its scopes fail), one whose
    identity cannot even be asked. The headline counts what failed (not "synced 48 scopes"), stderr has one
    sentence per failing account naming its profile and what to do (not 24 raw lines), exit code 2."""
    from app.config import AccountConfig, Config, save_config
    from app.demo.demo_estate import simulated_estate

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    regions = ["us-west-2", "us-east-1"]
    with simulated_estate() as (endpoint, summary):
        save_config(Config(accounts=[
            AccountConfig(name="production", profile="prod", regions=regions),
            AccountConfig(name="ghost", profile="no-such-profile", regions=regions, account_id="444444444444"),
            AccountConfig(name="phantom", profile="nor-this-one", regions=regions)]), home / "config.yaml")
        out = run(["sync"], home, timeout=300)
        data = json.loads(run(["sync", "--json"], home, timeout=300).stdout)
    assert out.returncode == 2, out.stderr[-2000:]
    total = len(data["scopes"])
    failed = len([s for s in data["scopes"] if not s["ok"]])
    assert total == 2 * failed and failed == len(data["errors"]) - 1 > 10
    assert out.stdout.startswith(f"synced {total - failed} of {total} scopes; {failed} failed; account phantom could "
                                 "not be reached"), out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in out.stderr, out.stderr
    ghost, phantom = (line.strip() for line in lines)
    assert ghost.startswith(f"ghost in global, us-east-1 and us-west-2: {failed} scopes failed: ")
    assert "'no-such-profile'" in ghost and "cloudops accounts import" in ghost
    assert phantom.startswith("phantom: the account could not be reached: ") and "'nor-this-one'" in phantom


def test_demo_refuses_a_folder_that_holds_your_own_accounts(tmp_path):
    """The demo writes config.yaml and syncs into its folder: pointed at a real one, it refuses and changes nothing."""
    home = tmp_path / "home"
    assert run(["accounts", "add", "ops", "--profile", "ops", "--region", "eu-west-1"], home).returncode == 0
    saved = (home / "config.yaml").read_bytes()
    sentence = one_sentence(run(["demo"], home))
    assert str(home / "config.yaml") in sentence and "ops" in sentence and "CLOUDOPS_HOME" in sentence
    assert (home / "config.yaml").read_bytes() == saved and not (home / "index").exists()


def test_demo_serve_keeps_aws_running_for_run_and_the_app_in_another_shell(tmp_path):
    """`cloudops demo --serve`: after the demo, the simulated AWS stays up; in another process with only
    CLOUDOPS_HOME set (no AWS variable), plan -> approve -> run stops pg-instance-main1 and the index shows it
    stopped, and the headless app plans and runs a read on it. Ctrl+C stops it cleanly: the file that lent the
    profiles and the temporary AWS config are gone, no key was ever under CLOUDOPS_HOME, and the next sync says
    in one sentence per account that the demo's AWS is not running."""
    import signal

    from app.demo.demo_estate import _TEST_KEYS

    home = tmp_path / "home"
    env = {**os.environ, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    shell = {k: v for k, v in env.items() if not k.startswith("AWS_")}  # another shell: nothing exported
    log = open(tmp_path / "demo.log", "w+")
    demo = subprocess.Popen(CLI + ["demo", "--serve"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while "until you press Ctrl+C" not in (tmp_path / "demo.log").read_text() and time.monotonic() < deadline:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
            time.sleep(0.5)
        text = (tmp_path / "demo.log").read_text()
        assert f"export CLOUDOPS_HOME={home}" in text and 'cloudops run "Stop pg-instance-main1"' in text
        aws_config = json.loads((home / "simulated-aws.json").read_text())["env"]["AWS_CONFIG_FILE"]
        assert not aws_config.startswith(str(home))

        out = subprocess.run(CLI + ["run", "Stop pg-instance-main1", "--approve", "--confirm", "pg-instance-main1",
                                    "--json"], capture_output=True, text=True, timeout=300, env=shell, cwd=ROOT,
                             stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout)
        assert result["executed"] and result["steps"][0]["status"] == "succeeded"
        assert result["steps"][0]["operation"] == "StopDBInstance"
        hit = json.loads(subprocess.run(CLI + ["search", "pg-instance-main1", "--json"], capture_output=True,
                                        text=True, timeout=120, env=shell, cwd=ROOT).stdout)[0]
        assert hit["name"] == "pg-instance-main1" and hit["state"] == "stopped"

        from conftest import wait_for_endpoint

        app_log = open(home / "app.log", "w")
        app = subprocess.Popen(CLI + ["app", "--headless"], env=shell, cwd=ROOT,
                               stdin=subprocess.DEVNULL, stdout=app_log, stderr=subprocess.STDOUT)
        try:
            info = wait_for_endpoint(home, app)
            with httpx.Client(base_url=info["url"], headers={"Authorization": f"Bearer {info['token']}"},
                              timeout=120) as client:
                plan = client.post("/v1/plan", json={"prompt": "describe bastion in dev"}).json()
                assert plan["script"]["steps"] and not plan["approval_required"], plan
                report = client.post("/v1/execute", json={"request_id": plan["request_id"]}).json()
                assert report["steps"][0]["status"] == "succeeded", report
                assert "bastion" in json.dumps(report["steps"][0]["output"])
        finally:
            app.send_signal(signal.SIGINT)
            app.wait(timeout=60)
            app_log.close()
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    text = (tmp_path / "demo.log").read_text()
    assert demo.returncode == 0 and "Traceback" not in text, text[-3000:]
    assert "Stopped the simulated AWS" in text
    assert not (home / "simulated-aws.json").exists() and not Path(aws_config).exists()
    for path in home.rglob("*"):
        if path.is_file():
            assert all(key.encode() not in path.read_bytes() for key in _TEST_KEYS), path
    out = subprocess.run(CLI + ["sync"], capture_output=True, text=True, timeout=300, env=shell, cwd=ROOT,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and out.stdout.startswith("synced 0 of 72 scopes; 72 failed"), out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 3 and all("cloudops demo --serve" in line for line in lines), out.stderr
