"""The local endpoint: loopback Host only, no foreign Origin, per-launch bearer token, endpoint.json
0600, and the protocol's plan route doing the lookup itself when given only a prompt."""

from __future__ import annotations

import stat

import pytest
from starlette.testclient import TestClient

from app.interfaces.endpoint import LocalService, create_endpoint, new_token, write_endpoint_file
from conftest import index_eval_estate


@pytest.fixture(scope="module")
def client(tmp_path_factory, stack):
    import os

    from app.config import AccountConfig, Config, save_config

    home = tmp_path_factory.mktemp("endpoint-home")
    old = os.environ.get("CLOUDOPS_HOME")
    os.environ["CLOUDOPS_HOME"] = str(home)
    save_config(Config(accounts=[AccountConfig(name="production", profile="prod", regions=["us-west-2"])]),
                home / "config.yaml")
    index_eval_estate(home, stack.index.embedder, write_qdrant=False)
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
    # The lookup sends the named resource first (context.identify may add a few of other types beside it).
    assert plan["identified_resources"][0]["resource_id"] == "pg-instance-main1"
    assert plan["script"]["steps"][0]["targets"] == ["pg-instance-main1"]


def test_approve_and_execute_are_pinned(client):
    plan = client.post("/v1/plan", json={"prompt": "Stop pg-instance-main1"}).json()
    assert client.post("/v1/execute", json={"request_id": plan["request_id"]}).status_code == 403  # not approved
    assert client.post("/v1/approve", json={"request_id": "nope"}).status_code == 404
    # A change to a production database: approval takes its name typed.
    assert plan["confirmation"]["phrase"] == "pg-instance-main1"
    untyped = client.post("/v1/approve", json={"request_id": plan["request_id"]})
    assert untyped.status_code == 409 and "pg-instance-main1" in untyped.json()["error"]
    approval = client.post("/v1/approve", json={"request_id": plan["request_id"], "confirm": "pg-instance-main1"}).json()
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
    assert client.post("/v1/plan", content=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
    assert client.get("/v1/status").json()["documents"] == 60


def test_endpoint_file_is_private(tmp_path):
    path = write_endpoint_file(tmp_path, "http://127.0.0.1:1", "secret-token")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "secret-token" in path.read_text()


# ------------------------------------------------------------------------------- the UI's routes

NEW_ROUTES = [("GET", "/v1/autocomplete?q=pg"), ("GET", "/v1/explorer"), ("GET", "/v1/resource?id=x"),
              ("GET", "/v1/plans/x"), ("POST", "/v1/deny"), ("POST", "/v1/dryrun"), ("GET", "/v1/settings"),
              ("PUT", "/v1/settings")]


def _fields(reply) -> list[str]:
    return [d["field"] for d in reply.json()["details"]]


def test_new_routes_need_the_token(client):
    for method, path in NEW_ROUTES:
        reply = client.request(method, path, headers={"Authorization": ""}, json={})
        assert reply.status_code == 401, (method, path)
        assert client.request(method, path, headers={"Authorization": "Bearer nope"}, json={}).status_code == 401


def test_static_ui_without_token_with_csp(client):
    page = client.get("/", headers={"Authorization": ""})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script" in page.text and "<script>" not in page.text  # scripts by src only: no inline code
    script = client.get("/ui/js/app.js", headers={"Authorization": ""})
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "content-security-policy" in script.headers
    assert client.get("/ui/css/app.css", headers={"Authorization": ""}).status_code == 200
    # Still behind the Host and Origin checks.
    assert client.get("/", headers={"Authorization": "", "Host": "evil.example"}).status_code == 403
    assert client.get("/ui/js/app.js", headers={"Authorization": "", "Origin": "https://evil.example"}).status_code == 403
    # API answers carry the policy too.
    assert "content-security-policy" in client.get("/v1/health").headers


@pytest.mark.parametrize("path", ["/ui/../app/interfaces/endpoint.py", "/ui/%2e%2e/pyproject.toml", "/ui/..%2fpyproject.toml",
                                  "/ui/js/../../pyproject.toml", "/ui/.hidden.js", "/ui/README.md",
                                  "/ui/js/%2e%2e/%2e%2e/app/interfaces/webui.py", "/ui/..\\pyproject.toml", "/ui/",
                                  "/ui//etc/passwd.js", "/ui/../v1/health"])
def test_path_traversal_refused(client, path):
    # Through HTTP without the token (the client may normalise dot segments: nothing public may be left) ...
    reply = client.get(path, headers={"Authorization": ""})
    assert reply.status_code in (401, 404), (path, reply.status_code)
    assert "[project]" not in reply.text and "import" not in reply.text
    # ... and raw to the ASGI app, with and without the token: a dot segment never leaves ui/.
    for auth in ("", client.headers["Authorization"]):
        status, body = _raw_get(client.app, path, auth)
        assert status in (401, 404) and b"[project]" not in body and b"import" not in body, (path, status)


def _raw_get(app, raw_path: str, auth: str) -> tuple[int, bytes]:
    """GET with the path exactly as given (decoded like a server would), no client-side normalisation."""
    import asyncio
    from urllib.parse import unquote

    headers = [(b"host", b"127.0.0.1:8899")] + ([(b"authorization", auth.encode())] if auth else [])
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": unquote(raw_path), "raw_path": raw_path.encode(), "root_path": "", "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8899)}
    out: dict = {"body": b""}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return out["status"], out["body"]


def test_symlink_out_of_the_ui_folder_refused(tmp_path, client):
    from app.interfaces.webui import resolve_asset

    root = tmp_path / "ui"
    root.mkdir()
    (root / "ok.js").write_text("export {};")
    (tmp_path / "secret.js").write_text("secret")
    (root / "link.js").symlink_to(tmp_path / "secret.js")
    assert resolve_asset(root.resolve(), "ok.js") is not None
    assert resolve_asset(root.resolve(), "link.js") is None
    assert resolve_asset(root.resolve(), "../secret.js") is None


def test_autocomplete(client):
    reply = client.get("/v1/autocomplete", params={"q": "pg-inst", "limit": 5})
    assert reply.status_code == 200
    names = [s["name"] for s in reply.json()["suggestions"]]
    assert "pg-instance-main1" in names and len(names) <= 5
    first = next(s for s in reply.json()["suggestions"] if s["name"] == "pg-instance-main1")
    assert first["resource_type"] == "rds_db_instance" and first["places"]
    assert client.get("/v1/autocomplete", params={"q": "  "}).json()["suggestions"] == []
    assert _fields(client.get("/v1/autocomplete")) == ["q"]
    assert _fields(client.get("/v1/autocomplete", params={"q": "pg", "limit": 0})) == ["limit"]
    assert _fields(client.get("/v1/autocomplete", params={"q": "pg", "bogus": 1})) == ["bogus"]


def test_explorer_counts_match_the_store(client):
    everything = client.get("/v1/explorer").json()
    assert everything["total"] == client.get("/v1/status").json()["documents"] == 60
    assert sum(g["count"] for g in everything["groups"]) == 60
    account = everything["facets"]["accounts"][0]
    scoped = client.get("/v1/explorer", params={"account": account["account_name"]}).json()
    by_id = client.get("/v1/explorer", params={"account": account["account_id"]}).json()
    assert scoped["total"] == by_id["total"] == sum(g["count"] for g in everything["groups"]
                                                    if g["account_id"] == account["account_id"])
    assert all(r["account_id"] == account["account_id"] for r in scoped["resources"])
    rds = client.get("/v1/explorer", params={"service": "rds", "type": "rds_db_instance"}).json()
    assert rds["total"] > 0 and {r["resource_type"] for r in rds["resources"]} == {"rds_db_instance"}
    assert client.get("/v1/explorer", params={"service": "r%"}).json()["total"] == 0  # LIKE wildcards are literal
    assert len(client.get("/v1/explorer", params={"limit": 3}).json()["resources"]) == 3
    assert _fields(client.get("/v1/explorer", params={"limit": "many"})) == ["limit"]


def test_resource_document(client):
    hit = client.post("/v1/search", json={"query": "pg-instance-main1"}).json()[0]
    doc = client.get("/v1/resource", params={"id": hit["id"]})
    assert doc.status_code == 200
    assert doc.json()["name"] == "pg-instance-main1" and doc.json()["arn"] == hit["arn"] and "attributes" in doc.json()
    assert client.get("/v1/resource", params={"id": "arn:aws:nothing"}).status_code == 404
    assert _fields(client.get("/v1/resource")) == ["id"]


def test_plan_by_id_deny_and_dry_run(client):
    plan = client.post("/v1/plan", json={"prompt": "Stop pg-instance-main1"}).json()
    shown = client.get(f"/v1/plans/{plan['request_id']}").json()
    assert shown["plan"]["plan_hash"] == plan["plan_hash"]
    assert any("pg-instance-main1" in p for p in shown["production"]) and shown["approval_ttl_s"] == 600
    dry = client.post("/v1/dryrun", json={"request_id": plan["request_id"]}).json()
    assert list(dry["results"].values()) == ["no dry run for this API"]
    assert client.post("/v1/deny", json={"request_id": plan["request_id"], "reason": 7}).status_code == 422
    assert client.post("/v1/deny", json={"request_id": plan["request_id"], "reason": "not today"}).json()["denied"]
    assert client.get(f"/v1/plans/{plan['request_id']}").json()["status"] == "denied"  # every view shows it
    refused = client.post("/v1/approve", json={"request_id": plan["request_id"], "confirm": "pg-instance-main1"})
    assert refused.status_code == 409 and "denied" in refused.json()["error"]
    assert client.post("/v1/deny", json={"request_id": "no-such-plan"}).status_code == 404
    denial = next(e for e in client.get("/v1/audit").json() if e["kind"] == "denial")
    assert denial["request_id"] == plan["request_id"] and "operator: not today" in denial["detail"]


def test_settings_validate_write_and_offline(client):
    from app.config import load_config

    before = client.get("/v1/settings").json()
    assert before["offline"] is False and before["accounts"][0]["name"] == "production"
    assert _fields(client.put("/v1/settings", json={"server_url": "ftp://x"})) == ["server_url"]
    assert _fields(client.put("/v1/settings", json={"offline": "yes"})) == ["offline"]
    assert _fields(client.put("/v1/settings", json={"schedules": {"full_every_s": 5}})) == ["schedules.full_every_s"]
    assert _fields(client.put("/v1/settings", json={"accounts": []})) == ["accounts"]
    assert client.put("/v1/settings", content=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
    try:
        # A server nobody answers on: planning falls back and says so, unless offline.
        saved = client.put("/v1/settings", json={"server_url": "http://127.0.0.1:9", "offline": False}).json()
        assert saved["server_url"] == "http://127.0.0.1:9" and load_config().server_url == "http://127.0.0.1:9"
        warned = client.post("/v1/plan", json={"prompt": "Stop pg-instance-main1"}).json()
        assert any("agent server not used" in w for w in warned["warnings"])
        assert client.put("/v1/settings", json={"offline": True}).json()["offline"] is True
        assert load_config().offline is True and load_config().accounts[0].name == "production"
        quiet = client.post("/v1/plan", json={"prompt": "Stop pg-instance-main1"}).json()
        assert quiet["served_by"] == "local" and not any("agent server" in w for w in quiet["warnings"])
        changed = client.put("/v1/settings", json={"schedules": {"full_every_s": 3600, "incremental_every_s": 60}})
        assert changed.json()["schedules"] == {"full_every_s": 3600, "incremental_every_s": 60, "events_every_s": 60}
    finally:
        client.put("/v1/settings", json={"server_url": "", "offline": False, "schedules": before["schedules"]})
    assert client.get("/v1/settings").json()["server_url"] is None and load_config().offline is False


def test_approval_ttl_from_the_environment(monkeypatch):
    from datetime import timedelta

    from app.execution.service import APPROVAL_TTL_ENV
    from app.execution.service import approval_ttl as _approval_ttl

    monkeypatch.delenv(APPROVAL_TTL_ENV, raising=False)
    assert _approval_ttl() is None  # the approval book's 10 minutes
    monkeypatch.setenv(APPROVAL_TTL_ENV, "30")
    assert _approval_ttl() == timedelta(seconds=30)
    for bad in ("0", "-5", "100000"):
        monkeypatch.setenv(APPROVAL_TTL_ENV, bad)
        with pytest.raises(ValueError):
            _approval_ttl()
