"""The operation catalogue: every API call of the 13 estate services is an entry; a verb alone never picks a
call; out of scope is said, not guessed; generated plans carry approval and the access level's risk, ask
for what they lack, and pass the client's own verification."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import botocore.session
import httpx
import pytest

from agent.access_levels import ESTATE_SERVICES, access
from agent.catalogue import CATALOGUE_VERSION, Catalogue, build_entries, catalogue_fingerprint, split_name
from agent.protocol import PlanRequest
from conftest import ROOT, CountingEmbedder

CATALOGUE_SET = ROOT / "tests" / "eval_catalogue"


def test_every_operation_of_the_estate_services_is_an_entry():
    session = botocore.session.get_session()
    entries = build_entries()
    assert {e.id for e in entries} == {f"{s}.{op}" for s in ESTATE_SERVICES
                                       for op in session.get_service_model(s).operation_names}
    by_id = {e.id: e for e in entries}
    for entry in entries:
        assert entry.access == access(entry.service, entry.operation).encode()
        assert entry.verb and entry.summary, entry.id
    # Identifier members bind the estate's resource types; a created name is not a binding.
    assert [(b.member, b.resource_types, b.required) for b in by_id["rds.DeleteDBInstance"].bindings] == \
        [("DBInstanceIdentifier", ("rds_db_instance",), True)]
    create = by_id["rds.CreateDBInstance"]
    assert create.creates == "DBInstanceIdentifier" and "DBInstanceIdentifier" not in {b.member for b in create.bindings}
    assert {b.member for b in by_id["ec2.AttachVolume"].bindings} == {"InstanceId", "VolumeId"}
    assert by_id["elbv2.RegisterTargets"].bindings[-1].inner == "Id"
    assert by_id["rds.AddTagsToResource"].bindings[0].field == "arn"
    assert split_name("ExportTableToPointInTime") == ("export", ("table",), ("point", "time"))
    assert "VisibilityTimeout" in by_id["sqs.GetQueueAttributes"].returns
    assert catalogue_fingerprint().endswith(f"catalogue-{CATALOGUE_VERSION}/" + catalogue_fingerprint().split("/")[-1])


def test_the_catalogue_is_cached_with_the_index_and_embeds_only_new_texts(tmp_path, monkeypatch):
    from agent.embeddings import shared_embedder
    from agent.playbook_index import PlaybookIndex

    monkeypatch.setenv("CLOUDOPS_CATALOGUE_CACHE", str(tmp_path / "vectors"))
    entries = [e for e in build_entries() if e.service in ("sqs", "sns")]
    embedder = CountingEmbedder(shared_embedder())
    first = PlaybookIndex.at(tmp_path / "a", embedder)
    stats = first.sync_catalogue(entries)
    assert stats.entries == len(entries) and stats.embedded_texts == embedder.texts >= len(entries)
    assert len(first.operation_records()) == len(entries) and first.operation_records()[0].fingerprint == stats.fingerprint
    first.close()
    # A restart reads the entries back whole (no walk of botocore's shapes) ...
    again = PlaybookIndex.at(tmp_path / "a", embedder)
    assert again.cached_catalogue() == sorted(entries, key=lambda e: e.id)
    again.close()
    # ... and another index (another CLOUDOPS_HOME) finds every vector in the cache.
    second = PlaybookIndex.at(tmp_path / "b", embedder)
    assert second.cached_catalogue() is None
    before = embedder.texts
    assert second.sync_catalogue(entries).embedded_texts == 0 and embedder.texts == before
    # A changed documentation sentence (a new botocore) embeds that text alone.
    changed = [entries[0].__class__(**{**entries[0].__dict__, "summary": "Something else entirely."}), *entries[1:]]
    assert second.sync_catalogue(changed).embedded_texts == 1
    assert (tmp_path / "vectors" / "catalogue-vectors.db").stat().st_mode & 0o077 == 0
    second.close()


def plan(planner, prompt, resources=(), accounts=None):
    accounts = accounts or [{"account_id": "111111111111", "name": "production", "profile": "prod",
                             "regions": ["us-east-1"]}]
    return planner.plan(PlanRequest(prompt=prompt, identified_resources=list(resources),
                                    user_context={"aws_accounts": accounts, "default_region": "us-east-1"}))


def res(rtype, rid, **kw):
    return {"resource_type": rtype, "resource_id": rid, "name": kw.pop("name", rid), "account_id": "111111111111",
            "account_name": "production", "region": "us-east-1", **kw}


@pytest.mark.parametrize("prompt, service, operation", [
    ("To delete an event subscription", "rds", "DeleteEventSubscription"),
    ("To cancel Spot Instance requests", "ec2", "CancelSpotInstanceRequests"),
    ("list the rds event subscriptions", "rds", "DescribeEventSubscriptions"),
    ("show me the db parameter groups", "rds", "DescribeDBParameterGroups"),
    ("what key pairs do we have", "ec2", "DescribeKeyPairs"),
])
def test_the_object_the_prompt_names_picks_the_call(planner, prompt, service, operation):
    p = plan(planner, prompt)
    assert (p.classification.service, p.classification.operation) == (service, operation), p.explain_plan
    assert not any(s.mutating for s in p.script.steps if s.operation != operation)


@pytest.mark.parametrize("prompt, never", [
    ("To delete an event subscription", "DeleteDBInstance"),
    ("To create a capacity provider", "SetDesiredCapacity"),
    ("To make an AMI private", "CreateImage"),
    ("fix the database", "StopDBInstance"),
    ("give me the cost of pg-instance-main1", "StopDBInstance"),
])
def test_a_verb_match_alone_never_picks_an_operation(planner, prompt, never):
    p = plan(planner, prompt, [res("rds_db_instance", "pg-instance-main1")])
    assert p.classification.operation != never and not any(s.operation == never for s in p.script.steps)


@pytest.mark.parametrize("prompt", ["create a cloudfront distribution in front of the assets bucket",
                                    "rotate the orders database password in secrets manager",
                                    "order a large pizza to the office"])
def test_out_of_scope_says_so_names_the_nearest_and_plans_nothing(planner, prompt):
    p = plan(planner, prompt)
    assert p.script.steps == [] and p.classification.operation is None and p.approval_required is False
    assert p.clarification.question.startswith("I have no operation for") and "nearest:" in p.clarification.question
    assert all(c.kind == "operation" and c.operation for c in p.clarification.candidates)


def test_a_reviewed_playbook_wins_when_both_tiers_match(planner):
    p = plan(planner, "stop pg-instance-main1", [res("rds_db_instance", "pg-instance-main1", current_state="available")])
    assert p.classification.playbook == "aws_rds_stop_instance" and p.script.steps[0].operation == "StopDBInstance"


def test_a_generated_write_is_approved_high_risk_and_passes_the_clients_check(planner):
    from app.execution.verify import TrustContext, verify_plan

    fn = res("lambda_function", "nightly-report-generator",
             arn="arn:aws:lambda:us-east-1:111111111111:function:nightly-report-generator")
    p = plan(planner, "delete the lambda nightly-report-generator", [fn])
    step = p.script.steps[0]
    assert (step.service, step.operation, step.parameters) == ("lambda", "DeleteFunction",
                                                                {"FunctionName": "nightly-report-generator"})
    assert step.mutating and p.approval_required and p.classification.playbook is None
    assert p.classification.method == "catalogue" and p.risk_assessment.level == "critical"
    assert any("no reviewed playbook" in r for r in p.risk_assessment.reasons)
    request = PlanRequest(prompt="delete the lambda nightly-report-generator", identified_resources=[fn],
                          user_context={"aws_accounts": [{"account_id": "111111111111", "name": "production",
                                                          "profile": "prod", "regions": ["us-east-1"]}]})
    checked = verify_plan(p, TrustContext(resources=request.identified_resources,
                                          accounts=request.user_context.aws_accounts, prompt=request.prompt))
    assert checked.approval_required and checked.risk_assessment.level == "critical"


def test_a_sensitive_read_needs_approval(planner):
    p = plan(planner, "get the console output of web-server-2", [res("ec2_instance", "i-0123456789abcdef0",
                                                                     name="web-server-2")])
    step = p.script.steps[0]
    assert step.operation == "GetConsoleOutput" and not step.mutating and p.approval_required
    assert p.risk_assessment.level == "high" and "sensitive read" in p.risk_assessment.reasons[0]


def test_required_members_nobody_gave_are_asked_for_by_name_never_invented(planner):
    p = plan(planner, "create a db parameter group pg15-custom")
    assert p.classification.operation == "CreateDBParameterGroup" and p.script.steps == []
    question = p.clarification.question
    assert "DBParameterGroupFamily" in question and "Description" in question and "nothing is guessed" in question


def test_a_write_on_something_the_estate_does_not_hold_is_not_planned(planner):
    p = plan(planner, "delete the key pair old-laptop")
    assert p.classification.operation == "DeleteKeyPair" and p.script.steps == []
    assert "not a resource the estate index holds" in p.clarification.question


def test_a_created_things_name_is_taken_whole_and_validated(planner):
    p = plan(planner, "create an sqs queue named payments-events")
    step = p.script.steps[0]
    assert step.operation == "CreateQueue" and step.parameters == {"QueueName": "payments-events"}
    assert step.account_name == "production" and step.region == "us-east-1" and p.approval_required


def test_the_catalogue_development_set(planner, capsys):
    """Figures on the set the catalogue was developed against (tests/eval_catalogue: a development set, tuned
    against; the blind figure is tests/eval_e2e_blind4's first run)."""
    from agent.catalogue_eval import run

    report = run(planner, CATALOGUE_SET)
    with capsys.disabled():
        print("\n[catalogue development set (tests/eval_catalogue)]\n" + report.summary())
    assert report.possible >= 150 and report.impossible >= 25
    assert report.right / report.possible >= 0.95 and report.abstained / report.impossible >= 0.95
    assert report.other_mutating == 0 and report.other <= 2


def test_every_plan_of_the_catalogue_set_passes_the_clients_verification(planner):
    from agent.evaluation import load_cases, request_for
    from app.execution.verify import TrustContext, verify_plan

    estate, cases = load_cases(CATALOGUE_SET, "cases.yaml")
    steps = 0
    for case in cases:
        request = request_for(case, estate)
        response = planner.plan(request)
        trust = TrustContext(resources=request.identified_resources, accounts=request.user_context.aws_accounts,
                             playbooks=planner.stack.playbooks, prompt=request.prompt)
        checked = verify_plan(response, trust)  # raises PlanRefused
        assert checked.approval_required == response.approval_required, request.prompt
        steps += len(checked.script.steps)
    assert steps >= 80


def test_operations_route_lists_the_catalogue(stack):
    from starlette.testclient import TestClient

    from agent.server import create_app

    with TestClient(create_app(lambda: stack)) as client:
        body = client.get("/v1/operations").json()
        assert body["count"] == len(stack.catalogue) and body["fingerprint"] == catalogue_fingerprint()
        stop = next(o for o in body["operations"] if o["id"] == "rds.StopDBInstance")
        assert "aws_rds_stop_instance" in stop["reviewed_by"] and stop["approval"] is True
        sqs = client.get("/v1/operations", params={"service": "sqs"}).json()
        assert {o["service"] for o in sqs["operations"]} == {"sqs"} and sqs["count"] == 23
        missing = client.get("/v1/operations", params={"service": "nope"})
        assert missing.status_code == 404 and "the catalogue covers" in missing.json()["error"]
        assert client.get("/v1/playbooks").json()["operations"] == len(stack.catalogue)


def test_a_fresh_server_lists_playbooks_and_operations_over_a_real_socket(tmp_path):
    """`cloudops server` from nothing: GET /v1/playbooks answered 500 "no such table: playbook" (an in-memory
    SQLite database exists once per connection, and the listing ran on another thread)."""
    from bench.common import free_port

    port = free_port()
    env = {**os.environ, "CLOUDOPS_HOME": str(tmp_path / "home"), "CLOUDOPS_AGENT_CACHE": str(tmp_path / "cache"),
           "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "app.interfaces.cli", "server", "--port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/v1/health", timeout=2).json()["status"] == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("server did not come up")
        playbooks = httpx.get(url + "/v1/playbooks", timeout=30)
        assert playbooks.status_code == 200, playbooks.text
        assert len(playbooks.json()["playbooks"]) >= 50
        operations = httpx.get(url + "/v1/operations", timeout=30)
        assert operations.status_code == 200 and operations.json()["count"] == len(build_entries())
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_cli_lists_the_whole_catalogue(tmp_path):
    env = {**os.environ, "CLOUDOPS_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "app.interfaces.cli", "playbooks", "--all", "--json"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert len(body["operations"]) == len(Catalogue(build_entries())) and len(body["playbooks"]) >= 50
    bad = subprocess.run([sys.executable, "-m", "app.interfaces.cli", "playbooks", "--all", "--service", "nope"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no operations for service 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_an_in_memory_index_answers_from_any_thread():
    """The in-memory metadata database is one connection shared by every thread (it used to be one per thread:
    a worker thread saw no tables)."""
    import threading

    from agent.embeddings import shared_embedder
    from agent.playbook import load_playbooks
    from agent.playbook_index import PlaybookIndex
    from conftest import PLAYBOOKS

    index = PlaybookIndex(shared_embedder())
    index.sync(load_playbooks(PLAYBOOKS))
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(len(index.records())))
    worker.start()
    worker.join()
    assert seen and seen[0] >= 50
    index.close()


def test_a_request_no_call_resembles_offers_no_nearest_call(planner):
    """"order me a pizza" listed cloudformation DescribeStackEvents as the nearest call: noise that reads as a
    suggestion. Nothing above the floor of resemblance: it says so and offers nothing."""
    p = plan(planner, "order me a pizza")
    assert p.script.steps == [] and p.clarification.candidates == []
    assert "nearest: none (no call resembles it)" in p.clarification.question
    near = plan(planner, "move the messages in orders-queue-dlq back to their source queue",
                [res("sqs_queue", "https://sqs.us-west-2.amazonaws.com/111111111111/orders-queue-dlq")])
    assert near.clarification is None or "sqs StartMessageMoveTask" in near.clarification.question
