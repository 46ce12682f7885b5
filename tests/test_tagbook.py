"""Tags from one Resource Groups Tagging API listing per account-region (app.estate.tagbook), against moto.

What must hold: the tags stored are exactly what each resource's own tag call would say, whether the
book lists the resource, misses it (a tag written seconds ago, an untagged resource) or cannot be read
at all; and the per-resource tag calls disappear only when the book answered for them."""

from __future__ import annotations

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from app import awsclient
from app.config import AccountConfig
from app.estate.resource_store import ResourceStore
from app.estate.sync import SyncEngine
from app.estate.tagbook import BOOK_MIN

REGION = "us-west-2"
PER_RESOURCE_TAG_CALLS = {"ListQueueTags", "ListTagsForResource", "ListTagsOfResource", "GetBucketTagging", "ListTags"}


@pytest.fixture
def estate(tmp_path, monkeypatch):
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        ddb = boto3.client("dynamodb", region_name=REGION)
        expected: dict[str, dict[str, str]] = {}
        for i in range(BOOK_MIN + 1):
            sqs.create_queue(QueueName=f"orders-{i}", tags={"env": "prod" if i % 2 else "dev", "team": f"t{i}"})
            expected[f"orders-{i}"] = {"env": "prod" if i % 2 else "dev", "team": f"t{i}"}
            sns.create_topic(Name=f"alerts-{i}", Tags=[{"Key": "env", "Value": "prod"}])
            expected[f"alerts-{i}"] = {"env": "prod"}
            ddb.create_table(TableName=f"ledger-{i}", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                             BillingMode="PAY_PER_REQUEST", Tags=[{"Key": "app", "Value": f"ledger{i}"}])
            expected[f"ledger-{i}"] = {"app": f"ledger{i}"}
        sqs.create_queue(QueueName="untagged")
        expected["untagged"] = {}
        store = ResourceStore(tmp_path / "index")
        yield store, expected
        store.close()


def sync(store, embed=None):
    from agent.embeddings import shared_embedder

    engine = SyncEngine(store, embed or shared_embedder().encode,
                        [AccountConfig(name="main", profile=None, regions=[REGION])], max_workers=4)
    return engine.run()


def stored_tags(store) -> dict[str, dict[str, str]]:
    return {d.name: d.tags for d in store.all_documents()
            if d.resource_type in ("sqs_queue", "sns_topic", "dynamodb_table")}


def count_calls(monkeypatch, also=None) -> list[str]:
    calls: list[str] = []

    def hook(client, _account):
        client.meta.events.register("before-call", lambda model, **kw: calls.append(model.name))
        if also:
            also(client)

    monkeypatch.setattr(awsclient, "CLIENT_HOOKS", [hook])
    return calls


def test_many_new_resources_take_their_tags_from_one_listing(estate, monkeypatch):
    store, expected = estate
    calls = count_calls(monkeypatch)
    report = sync(store)
    assert report.ok, report.errors
    assert stored_tags(store) == expected
    assert calls.count("GetResources") == 1  # one book for the region, shared by sqs, sns and dynamodb
    # only the untagged queue, which the book cannot list, was asked for its own tags
    assert [c for c in calls if c in PER_RESOURCE_TAG_CALLS] == ["ListQueueTags"]


def test_a_resource_the_book_misses_is_asked_directly(estate, monkeypatch):
    """A tag written just before the sync may not be in GetResources yet: the resource is asked itself,
    so a production tag is never lost to the book's lag."""
    store, expected = estate

    def drop_orders_1(parsed, **kwargs):
        parsed["ResourceTagMappingList"] = [m for m in parsed.get("ResourceTagMappingList", [])
                                            if not m["ResourceARN"].endswith(":orders-1")]

    calls = count_calls(monkeypatch, also=lambda client: client.meta.events.register(
        "after-call.resource-groups-tagging-api.GetResources", drop_orders_1))
    assert sync(store).ok
    assert stored_tags(store)["orders-1"] == {"env": "prod", "team": "t1"}
    assert calls.count("ListQueueTags") == 2  # orders-1 and the untagged queue


def test_a_book_that_cannot_be_read_falls_back_to_per_resource_calls_without_an_error(estate, monkeypatch):
    store, expected = estate

    def deny(params, **kwargs):
        error = {"Error": {"Code": "AccessDeniedException", "Message": "tag:GetResources not allowed"},
                 "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse("https://tagging", 400, {}, None), error

    calls = count_calls(monkeypatch, also=lambda client: client.meta.events.register(
        "before-call.resource-groups-tagging-api.GetResources", deny))
    report = sync(store)
    assert report.ok, report.errors
    assert stored_tags(store) == expected
    n = BOOK_MIN + 1
    assert calls.count("ListQueueTags") == n + 1 and calls.count("ListTagsForResource") == n
    assert calls.count("ListTagsOfResource") == n


def test_an_incremental_sync_with_few_new_resources_does_not_page_the_region(estate, monkeypatch):
    store, _ = estate
    assert sync(store).ok
    boto3.client("sqs", region_name=REGION).create_queue(QueueName="fresh", tags={"env": "prod"})
    calls = count_calls(monkeypatch)
    assert sync(store).ok
    assert "GetResources" not in calls and calls.count("ListQueueTags") == 1
    assert stored_tags(store)["fresh"] == {"env": "prod"}
