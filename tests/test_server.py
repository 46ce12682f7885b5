"""The agent server over real HTTP semantics (Starlette's TestClient drives the ASGI app in-process)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.server import MAX_BODY_BYTES, create_app


@pytest.fixture(scope="module")
def client(stack):
    with TestClient(create_app(lambda: stack), raise_server_exceptions=False) as c:
        yield c


def test_health_and_playbooks(client):
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and health["protocol"] == "v1" and health["playbooks"] >= 40
    items = client.get("/v1/playbooks").json()["playbooks"]
    stop = next(p for p in items if p["id"] == "aws_rds_stop_instance")
    assert stop["operation"] == "StopDBInstance" and len(stop["content_hash"]) == 64


def test_plan_round_trip(client, seed_resource):
    reply = client.post("/v1/plan", json={"prompt": "Stop pg-instance-main1", "identified_resources": [seed_resource]})
    assert reply.status_code == 200
    body = reply.json()
    assert body["served_by"] == "server"
    assert body["script"]["steps"][0]["command"] == \
        "aws rds stop-db-instance --db-instance-identifier pg-instance-main1 --region us-west-2"
    assert body["risk_assessment"]["level"] == "medium" and body["approval_required"] is True


DESIGN_BODY = {  # the design document's request, exactly as it writes it
    "prompt": "Stop pg-instance-main1",
    "identified_resources": [{
        "resource_type": "rds_instance", "db_instance_identifier": "pg-instance-main1", "account_id": "123456789012",
        "region": "us-west-2", "current_state": "available", "engine": "postgres", "engine_version": "14.7",
        "multi_az": True, "tags": {"environment": "production"},
        "available_permissions": ["rds:StopDBInstance", "rds:CreateDBSnapshot"],
        "constraints": {"can_stop": True, "has_read_replicas": False, "automated_backups_enabled": True}}],
    "user_context": {"user_id": "user-123", "default_region": "us-west-2", "aws_accounts": ["123456789012"]},
}


def test_the_design_documents_own_request_is_served_as_the_design_answers(client):
    reply = client.post("/v1/plan", json=DESIGN_BODY)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    step = body["script"]["steps"][0]
    assert step["operation"] == "StopDBInstance" and step["parameters"] == {"DBInstanceIdentifier": "pg-instance-main1"}
    assert step["region"] == "us-west-2" and step["account_id"] == "123456789012"
    risk = body["risk_assessment"]
    assert risk["level"] == "medium" and body["approval_required"] is True
    assert "production database" in risk["reasons"] and any("Multi-AZ" in r for r in risk["reasons"])
    assert "Stop an RDS DB instance" in body["explain_plan"] and "Approval is required" in body["explain_plan"]
    resource = body["identified_resources"][0]
    assert resource["resource_id"] == "pg-instance-main1" and resource["attributes"]["engine_version"] == "14.7"


def test_malformed_request_is_422_naming_the_field(client):
    reply = client.post("/v1/plan", json={"prompt": "stop", "identified_resources": [{"resource_type": "ec2_instance"}]})
    assert reply.status_code == 422
    fields = [d["field"] for d in reply.json()["details"]]
    assert "identified_resources.0.resource_id" in fields


def test_not_json_is_400(client):
    reply = client.post("/v1/plan", content=b"{not json", headers={"content-type": "application/json"})
    assert reply.status_code == 400 and "not JSON" in reply.json()["error"]


def test_oversized_body_is_413_declared_or_streamed(client):
    big = b'{"prompt": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
    assert client.post("/v1/plan", content=big).status_code == 413

    def chunks():
        for _ in range(20):
            yield b"x" * (MAX_BODY_BYTES // 10)

    assert client.post("/v1/plan", content=chunks()).status_code == 413


def test_unknown_route_and_method_are_json(client):
    assert client.get("/v1/nothing").json()["error"]
    assert client.get("/v1/plan").status_code == 405


def test_an_internal_error_is_a_500_without_traceback(seed_resource):
    class Broken:
        playbooks = {}

        def planner(self, served_by):
            raise RuntimeError("secret internals /home/user/.aws/credentials")

    with TestClient(create_app(lambda: Broken()), raise_server_exceptions=False) as c:
        reply = c.post("/v1/plan", json={"prompt": "Stop pg-instance-main1", "identified_resources": [seed_resource]})
    assert reply.status_code == 500
    assert reply.json() == {"error": "internal error", "details": []}
    assert "Traceback" not in reply.text and "credentials" not in reply.text


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_server_stores_nothing_of_a_request(client, stack, seed_resource):
    cache = Path(stack.index.engine.url.database).parent
    before = _snapshot(cache)
    reply = client.post("/v1/plan", json={"prompt": "Stop pg-instance-main1", "identified_resources": [seed_resource]})
    assert reply.status_code == 200
    assert _snapshot(cache) == before
    assert "pg-instance-main1" not in json.dumps(before)


def test_embed_is_stateless_and_validated(client, stack):
    reply = client.post("/v1/embed", json={"texts": ["production postgres database", "payments queue"]})
    assert reply.status_code == 200
    body = reply.json()
    assert body["dimension"] == 384 and len(body["vectors"]) == 2
    local = stack.index.embedder.encode(["production postgres database"])[0]
    assert abs(sum(a * b for a, b in zip(local, body["vectors"][0])) - 1.0) < 1e-3
    assert client.post("/v1/embed", json={"texts": []}).status_code == 422
    assert client.post("/v1/embed", json={"texts": ["x" * 5000]}).status_code == 422


def test_a_client_can_embed_through_the_server(stack):
    """Estate.embedder uses the server's /v1/embed when configured: same vectors as the local model."""
    import socket
    import threading
    import time

    import numpy as np
    import uvicorn

    from app.estate.estate import RemoteEmbedder

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(lambda: stack), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        texts = [f"queue number {i}" for i in range(130)]  # more than one request's worth
        remote = RemoteEmbedder(f"http://127.0.0.1:{port}").encode(texts)
        local = stack.index.embedder.encode(texts)
        assert remote.shape == local.shape and np.allclose(remote, local, atol=1e-4)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("content", ["[" * 1000 + "]" * 1000, '{"prompt": ' + "[" * 100 + "]" * 100 + "}"])
def test_deeply_nested_json_is_400_not_500(client, content):
    reply = client.post("/v1/plan", content=content, headers={"content-type": "application/json"})
    assert reply.status_code == 400 and "nests deeper" in reply.json()["error"]


@pytest.mark.parametrize("body", [{"prompt": {"$gt": ""}}, {"prompt": "stop x", "identified_resources": "all"},
                                  {"prompt": "stop x", "user_context": {"aws_accounts": [7]}}])
def test_wrong_types_are_422_naming_the_field(client, body):
    reply = client.post("/v1/plan", json=body)
    assert reply.status_code == 422 and reply.json()["details"][0]["field"]
