"""The local endpoint: loopback Host only, no foreign Origin, per-launch bearer token, endpoint.json
0600, and the protocol's plan route doing the lookup itself when given only a prompt."""

from __future__ import annotations

import stat
from collections import defaultdict

import pytest
from starlette.testclient import TestClient

from app.endpoint import LocalService, create_endpoint, new_token, write_endpoint_file
from conftest import ROOT


@pytest.fixture(scope="module")
def client(tmp_path_factory, stack):
    import os

    from app.config import AccountConfig, Config, save_config
    from app.lookup_eval import documents_from_estate
    from app.resource_store import ResourceStore

    home = tmp_path_factory.mktemp("endpoint-home")
    old = os.environ.get("CLOUDOPS_HOME")
    os.environ["CLOUDOPS_HOME"] = str(home)
    save_config(Config(accounts=[AccountConfig(name="production", profile="prod", regions=["us-west-2"])]),
                home / "config.yaml")
    docs, _ = documents_from_estate(ROOT / "tests" / "eval" / "estate.yaml")
    store = ResourceStore(home / "index")
    vectors = dict(zip([d.id for d in docs], stack.index.embedder.encode([d.text for d in docs])))
    by_scope = defaultdict(list)
    for d in docs:
        by_scope[f"{d.account_id}/{d.region}/{d.service}"].append(d)
    for scope, scoped in by_scope.items():
        store.apply_scope(scope, scoped, vectors, write_qdrant=False)
    store.close()
    token = new_token()
    service = LocalService(lambda: stack)
    with TestClient(create_endpoint(service, token), base_url="http://127.0.0.1:8899") as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c
    service.estate.close()
    if old is None:
        os.environ.pop("CLOUDOPS_HOME", None)
    else:
        os.environ["CLOUDOPS_HOME"] = old


def test_token_host_and_origin(client):
    assert client.get("/v1/health").json()["role"] == "local"
    assert client.get("/v1/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/health", headers={"Authorization": ""}).status_code == 401
    assert client.get("/v1/health", headers={"Host": "evil.example"}).status_code == 403
    assert client.get("/v1/health", headers={"Host": "127.0.0.1.evil.example:8899"}).status_code == 403
    assert client.get("/v1/health", headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.get("/v1/health", headers={"Origin": "http://127.0.0.1:8899"}).status_code == 200
    assert client.get("/v1/health", headers={"Host": "localhost:8899"}).status_code == 200


def test_prompt_only_plan_does_the_lookup(client):
    reply = client.post("/v1/plan", json={"prompt": "Stop pg-instance-main1"})
    assert reply.status_code == 200
    plan = reply.json()
    assert plan["served_by"] == "local" and plan["classification"]["playbook"] == "aws_rds_stop_instance"
    assert plan["script"]["steps"][0]["parameters"] == {"DBInstanceIdentifier": "pg-instance-main1"}
    assert [r["resource_id"] for r in plan["identified_resources"]] == ["pg-instance-main1"]


def test_approve_and_execute_are_pinned(client):
    plan = client.post("/v1/plan", json={"prompt": "Stop pg-instance-main1"}).json()
    assert client.post("/v1/execute", json={"request_id": plan["request_id"]}).status_code == 403  # not approved
    assert client.post("/v1/approve", json={"request_id": "nope"}).status_code == 404
    approval = client.post("/v1/approve", json={"request_id": plan["request_id"]}).json()
    assert approval["plan_hash"] == plan["plan_hash"]
    other = client.post("/v1/plan", json={"prompt": "reboot pg-instance-main1"}).json()
    mismatch = client.post("/v1/execute", json={"request_id": other["request_id"], "approval_id": approval["approval_id"]})
    assert mismatch.status_code == 403 and "another plan" in mismatch.json()["error"]
    kinds = [e["kind"] for e in client.get("/v1/audit").json()]
    assert "approval" in kinds and "refusal" in kinds


def test_search_status_and_bad_input(client):
    hits = client.post("/v1/search", json={"query": "env=prod AND app=main"}).json()
    assert hits[0]["name"] == "pg-instance-main1" and hits[0]["why"]
    assert client.post("/v1/search", json={"query": ""}).status_code == 422
    assert client.post("/v1/search", json={"query": "(env=prod AND"}).status_code == 422
    assert client.post("/v1/plan", json={"prompt": ""}).status_code == 422
    assert client.post("/v1/plan", content=b"{nope").status_code == 400
    assert client.get("/v1/status").json()["documents"] == 60


def test_endpoint_file_is_private(tmp_path):
    path = write_endpoint_file(tmp_path, "http://127.0.0.1:1", "secret-token")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "secret-token" in path.read_text()
