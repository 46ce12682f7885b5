"""The boto3 seam: one service-model loader per process, and account sessions kept across sync runs
only while their account's configuration and keyring keys stay what they were made with."""

from __future__ import annotations

import pytest
from moto import mock_aws

from app import credentials
from app.awsclient import AccountSession, SessionPool


@pytest.fixture(autouse=True)
def static_keys(monkeypatch):
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(credentials, "load", lambda account: None)
    with mock_aws():
        yield


def test_every_account_session_reads_service_models_through_one_loader():
    first = AccountSession("a", None, ["us-east-1"]).session()
    second = AccountSession("b", None, ["us-east-1"]).session()
    assert first._session.get_component("data_loader") is second._session.get_component("data_loader")
    # and clients made from it still work
    assert AccountSession("c", None, ["us-east-1"]).client("sqs", "us-east-1").list_queues()["ResponseMetadata"]


def test_the_pool_reuses_a_used_session_and_its_clients():
    pool = SessionPool()
    session = pool.get("main", None, ["us-east-1"])
    client = session.client("sqs", "us-east-1")
    again = pool.get("main", None, ["us-east-1"])
    assert again is session and again.client("sqs", "us-east-1") is client


@pytest.mark.parametrize("change", [{"profile": "other"}, {"regions": ["eu-west-1"]}, {"account_id": "123456789012"}])
def test_the_pool_makes_a_new_session_when_the_account_configuration_changes(change):
    pool = SessionPool()
    session = pool.get("main", None, ["us-east-1"])
    session.session()
    args = {"profile": None, "regions": ["us-east-1"], "account_id": None, **change}
    assert pool.get("main", args["profile"], args["regions"], args["account_id"]) is not session


def test_the_pool_makes_a_new_session_when_the_keyring_keys_change(monkeypatch):
    pool = SessionPool()
    keys = {"k": credentials.AccessKeys("AKIAOLD0000000000000", "old-secret")}
    monkeypatch.setattr(credentials, "load", lambda account: keys["k"])
    session = pool.get("main", None, ["us-east-1"])
    session.session()
    assert pool.get("main", None, ["us-east-1"]) is session
    keys["k"] = credentials.AccessKeys("AKIANEW0000000000000", "new-secret")
    fresh = pool.get("main", None, ["us-east-1"])
    assert fresh is not session
    assert fresh.session().get_credentials().access_key == "AKIANEW0000000000000"


def test_a_session_never_used_is_not_reused_blindly():
    pool = SessionPool()
    unused = pool.get("main", None, ["us-east-1"])
    assert pool.get("main", None, ["us-east-1"]) is not unused  # nothing to save, and nothing stale kept
