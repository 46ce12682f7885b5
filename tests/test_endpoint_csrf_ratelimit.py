"""The local endpoint against a malicious web page (CSRF) and a flooding client (rate limit).

A cross-site HTML form can POST to 127.0.0.1, but only with a form or text/plain body and never with an
Authorization header; the endpoint must refuse it before any state-changing route (sync, execute,
approve, settings) runs. The per-token token bucket answers 429 with Retry-After. The real app, no mocks:
the refusals are checked by what the routes would have left behind (audit trail, status, settings).
"""

from __future__ import annotations

import os

import pytest
from starlette.testclient import TestClient

from app.interfaces.endpoint import LocalService, create_endpoint, new_token
from app.interfaces.ratelimit import RATE_LIMIT_ENV, RateLimit, TokenBuckets, rate_limit_from_env

EVIL = "https://evil.example"


def _never_built():
    raise AssertionError("the agent stack must not be reached by a refused request")


@pytest.fixture(scope="module")
def app_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("csrf-home")
    old = os.environ.get("CLOUDOPS_HOME")
    os.environ["CLOUDOPS_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("CLOUDOPS_HOME", None)
    else:
        os.environ["CLOUDOPS_HOME"] = old


@pytest.fixture(scope="module")
def endpoint(app_home):
    token = new_token()
    service = LocalService(_never_built)
    with TestClient(create_endpoint(service, token, rate_limit=None), base_url="http://127.0.0.1:8899") as client:
        yield client, token, service
    service.estate.close()


def _left_nothing(client, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/audit", headers=auth).json() == []
    assert client.get("/v1/status", headers=auth).json()["scopes"] == []


@pytest.mark.parametrize("route", ["/v1/sync", "/v1/execute", "/v1/approve", "/v1/plan", "/v1/deny"])
def test_cross_site_form_post_cannot_trigger_state_changing_routes(endpoint, route):
    client, token, _ = endpoint
    form = {"Content-Type": "text/plain"}
    # What a malicious page's <form enctype="text/plain"> sends: its own Origin, no Authorization.
    assert client.post(route, content=b'{"full": true}', headers={**form, "Origin": EVIL}).status_code == 403
    # Some browsers send no Origin (or "null") on a form post: the missing token still refuses it.
    assert client.post(route, content=b'{"full": true}', headers=form).status_code == 401
    assert client.post(route, content=b'{"full": true}', headers={**form, "Origin": "null"}).status_code == 403
    _left_nothing(client, token)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", ""])
def test_state_changing_routes_need_a_json_content_type_even_with_the_token(endpoint, content_type):
    client, token, _ = endpoint
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    for route in ("/v1/sync", "/v1/execute"):
        reply = client.post(route, content=b'{"full": true}', headers=headers)
        assert reply.status_code == 415, (route, content_type, reply.text)
        assert reply.json()["details"][0]["field"] == "Content-Type"
    assert client.put("/v1/settings", content=b'{"offline": true}', headers=headers).status_code == 415
    assert client.get("/v1/settings", headers={"Authorization": f"Bearer {token}"}).json()["offline"] is False
    _left_nothing(client, token)


def test_json_with_the_token_and_a_loopback_origin_is_served(endpoint):
    client, token, _ = endpoint
    headers = {"Authorization": f"Bearer {token}", "Origin": "http://127.0.0.1:8899",
               "Content-Type": "application/json; charset=utf-8"}
    # Reaches the route: the request id is unknown (404), which proves the guard let it through.
    assert client.post("/v1/execute", content=b'{"request_id": "nope"}', headers=headers).status_code == 404
    assert client.put("/v1/settings", content=b'{"offline": false}', headers=headers).status_code == 200


def test_rate_limit_answers_429_with_retry_after_then_recovers(app_home):
    import time

    token = new_token()
    service = LocalService(_never_built)
    try:
        app = create_endpoint(service, token, rate_limit=RateLimit(rate=2.0, burst=5))
        with TestClient(app, base_url="http://127.0.0.1:8899") as client:
            auth = {"Authorization": f"Bearer {token}"}
            codes = [client.get("/v1/health", headers=auth).status_code for _ in range(5)]
            assert codes == [200] * 5
            limited = client.get("/v1/health", headers=auth)
            assert limited.status_code == 429
            assert int(limited.headers["Retry-After"]) >= 1
            assert "too many requests" in limited.json()["error"]
            # Wrong tokens are refused as such (401) and do not drain the real token's bucket.
            assert client.get("/v1/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
            time.sleep(0.6)  # 2 tokens/s: one is back
            assert client.get("/v1/health", headers=auth).status_code == 200
    finally:
        service.estate.close()


def test_token_bucket_is_per_key_and_refills_at_its_rate():
    now = [0.0]
    buckets = TokenBuckets(RateLimit(rate=10.0, burst=2), clock=lambda: now[0])
    assert buckets.take("a") == 0.0 and buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.1)
    assert buckets.take("b") == 0.0  # another token has its own bucket
    now[0] += 0.1
    assert buckets.take("a") == 0.0


def test_rate_limit_is_configurable_and_refuses_a_malformed_setting(monkeypatch):
    monkeypatch.setenv(RATE_LIMIT_ENV, "20/100")
    assert rate_limit_from_env() == RateLimit(20.0, 100)
    monkeypatch.setenv(RATE_LIMIT_ENV, "off")
    assert rate_limit_from_env() is None
    monkeypatch.delenv(RATE_LIMIT_ENV)
    assert rate_limit_from_env() is not None  # on by default
    for bad in ("fast", "0/10", "5/0", "5/x"):
        monkeypatch.setenv(RATE_LIMIT_ENV, bad)
        with pytest.raises(ValueError, match=RATE_LIMIT_ENV):
            rate_limit_from_env()
