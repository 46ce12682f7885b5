"""The sync engine against moto (mock_aws): three accounts x two regions through assumed-role
profiles, deletion, tag change, AccessDenied on one service, throttling injected with botocore
events, progressive writes (searchable before any embedding), re-embedding only what changed. Uses the
real embedding model and the real Qdrant Edge store; nothing of ours is mocked."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from app import awsclient
from app.config import AccountConfig
from app.estate.resource_store import DENSE, ResourceStore, point_id, tag_pairs
from app.estate.sync import SyncEngine

ACCOUNTS = {"production": "111111111111", "staging": "222222222222", "dev": "333333333333"}
REGIONS = ["us-west-2", "us-east-1"]


@pytest.fixture
def aws(tmp_path, monkeypatch):
    config = tmp_path / "aws_config"
    creds = tmp_path / "aws_credentials"
    creds.write_text("[base]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    config.write_text("[profile base]\nregion = us-east-1\n" + "".join(
        f"\n[profile {name}]\nrole_arn = arn:aws:iam::{account}:role/sync\nsource_profile = base\n"
        for name, account in ACCOUNTS.items()))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        for name in ACCOUNTS:
            session = boto3.Session(profile_name=name)
            for region in REGIONS:
                sqs = session.client("sqs", region_name=region)
                for i in range(2):
                    sqs.create_queue(QueueName=f"{name}-{region}-q{i}", tags={"env": name})
                session.client("dynamodb", region_name=region).create_table(
                    TableName=f"{name}-orders", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
                    Tags=[{"Key": "env", "Value": name}])
                ec2 = session.client("ec2", region_name=region)
                image = ec2.describe_images()["Images"][0]["ImageId"]
                ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[{
                    "ResourceType": "instance", "Tags": [{"Key": "Name", "Value": f"web-{name}"}, {"Key": "env", "Value": name}]}])
            session.client("s3", region_name="us-east-1").create_bucket(Bucket=f"acme-{name}-assets")
        yield tmp_path


@pytest.fixture
def store(aws):
    s = ResourceStore(aws / "index")
    yield s
    s.close()


def engine(store, embedder) -> SyncEngine:
    accounts = [AccountConfig(name=n, profile=n, regions=REGIONS) for n in ACCOUNTS]
    return SyncEngine(store, embedder.encode, accounts, max_workers=4)


@pytest.fixture(scope="session")
def embedder():
    from agent.embeddings import shared_embedder

    return shared_embedder()


# per account: 2 regions x (2 queues + 1 table + 1 instance + 1 volume of its root disk) + 1 bucket (+ IAM roles moto seeds)
def count_type(store, resource_type):
    from qdrant_edge import FieldCondition, Filter, MatchValue

    return store.count(Filter(must=[FieldCondition(key="resource_type", match=MatchValue(resource_type))]))


def point(store, arn):
    """The stored point of ``arn`` (payload and dense vector), or None."""
    records = store.shard.retrieve([point_id(arn)], with_payload=True, with_vector=[DENSE])
    return records[0] if records else None


def test_incremental_sync_makes_detail_calls_only_for_new_resources(store, embedder, monkeypatch):
    engine(store, embedder).run()
    calls: list[str] = []

    def count(client, _account):
        client.meta.events.register("before-call", lambda model, **kw: calls.append(model.name))

    monkeypatch.setattr(awsclient, "CLIENT_HOOKS", [count])
    boto3.Session(profile_name="dev").client("sqs", region_name="us-west-2").create_queue(
        QueueName="brand-new", tags={"env": "dev"})
    report = engine(store, embedder).run().as_json()
    assert report["added"] == 1 and report["embedded"] == 1
    assert calls.count("GetQueueAttributes") == 1 and "DescribeTable" not in calls
    new = [d for d in store.known("333333333333/us-west-2/sqs").values() if d.name == "brand-new"]
    assert new and new[0].tags == {"env": "dev"}


def test_full_then_unchanged_resync(store, embedder):
    first = engine(store, embedder).run()
    assert first.ok, first.errors
    data = first.as_json()
    assert data["added"] == store.count() and data["embedded"] == data["added"]
    assert {s.account_id for s in first.scopes} == set(ACCOUNTS.values())
    assert count_type(store, "sqs_queue") == 3 * 2 * 2
    assert count_type(store, "dynamodb_table") == 3 * 2
    assert count_type(store, "ec2_instance") == 3 * 2
    assert count_type(store, "s3_bucket") == 3
    # the seed's normalisation: account, region, tags, hash
    doc = store.document(next(iter(store.all_hashes())))
    assert doc.account_id in ACCOUNTS.values() and doc.content_hash
    # every point has its meaning vector once the run returns
    assert data["semantic_pending"] == 0 and store.semantic_pending() == 0
    again = engine(store, embedder).run()
    assert again.ok and again.as_json()["embedded"] == 0 and again.as_json()["added"] == 0
    assert again.as_json()["unchanged"] == store.count()


def test_deletion_and_tag_change(store, embedder):
    engine(store, embedder).run()
    staging = boto3.Session(profile_name="staging")
    sqs = staging.client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName="staging-us-east-1-q0")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.delete_queue(QueueUrl=url)
    table = staging.client("dynamodb", region_name="us-west-2")
    table_arn = table.describe_table(TableName="staging-orders")["Table"]["TableArn"]
    table.tag_resource(ResourceArn=table_arn, Tags=[{"Key": "env", "Value": "production"}])
    # Incremental: the listing shows the deletion at once; DynamoDB's tags come from a detail call,
    # which an incremental sync skips for known tables, so the tag change waits for a full sync.
    report = engine(store, embedder).run().as_json()
    assert report["removed"] == 1 and report["updated"] == 0 and report["embedded"] == 0
    assert store.document(table_arn).tags["env"] == "staging"
    report = engine(store, embedder).run(full=True).as_json()
    assert report["removed"] == 0 and report["updated"] == 1 and report["embedded"] == 1
    assert store.document(arn) is None
    assert point(store, arn) is None
    assert store.document(table_arn).tags["env"] == "production"
    stored = point(store, table_arn)
    assert stored.payload["tags"]["env"] == "production"
    assert stored.payload["tag_pairs"] == tag_pairs({"env": "production"})  # indexed canonically: prod = production
    assert DENSE in stored.vector  # re-embedded: its tags are in the dense text


def test_access_denied_on_one_service_keeps_its_documents(store, embedder, monkeypatch):
    engine(store, embedder).run()
    before = count_type(store, "dynamodb_table")

    def deny(params, **kwargs):
        error = {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"},
                 "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse("https://dynamodb", 400, {}, _Raw(b"")), error

    def hook(client, account_name):
        if account_name == "staging" and client.meta.service_model.service_name == "dynamodb":
            client.meta.events.register("before-call.dynamodb.ListTables", deny)

    monkeypatch.setattr(awsclient, "CLIENT_HOOKS", [hook])
    report = engine(store, embedder).run()
    assert {e["scope"] for e in report.errors} == {"222222222222/us-west-2/dynamodb", "222222222222/us-east-1/dynamodb"}
    assert all("AccessDenied" in e["error"] for e in report.errors)
    assert count_type(store, "dynamodb_table") == before  # nothing deleted for the failed scopes
    assert len([s for s in report.scopes if s.ok]) == len(report.scopes) - 2
    from app.estate.sync_status import StatusBook

    status = StatusBook(store.engine).get("222222222222/us-east-1/dynamodb")
    assert status.last_error.startswith("AccessDenied") and status.last_success is not None and status.count == 1


def test_throttling_on_a_third_of_calls_is_retried_to_completion(store, embedder, monkeypatch):
    calls = {"n": 0}

    def throttle(request, **kwargs):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            return AWSResponse(request.url, 503, {}, _Raw(b""))
        return None

    monkeypatch.setattr(awsclient, "CLIENT_HOOKS", [lambda client, _: client.meta.events.register_first("before-send", throttle)])
    monkeypatch.setattr(awsclient, "RETRY_ATTEMPTS", 10)
    report = engine(store, embedder).run()
    assert report.ok, report.errors
    assert sum(s.retries for s in report.scopes) > 0
    assert count_type(store, "sqs_queue") == 12 and count_type(store, "dynamodb_table") == 6
    ids = list(store.all_hashes())
    assert len(ids) == len(set(ids))


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **kwargs):
        yield self._body

    def read(self, *args, **kwargs):
        body, self._body = self._body, b""
        return body


def test_every_point_is_there_on_reopening(store, embedder):
    """Edge writes behind its own write-ahead log: closing and reopening the store finds every point, with
    its vector, and the same ids as the sync reported."""
    report = engine(store, embedder).run()
    assert report.ok
    ids = store.qdrant_ids()
    store.close()
    reopened = ResourceStore(store.directory)
    try:
        assert reopened.qdrant_ids() == ids and len(ids) == report.as_json()["added"]
        assert reopened.semantic_pending() == 0
    finally:
        reopened.close()


def test_a_point_lost_from_the_shard_comes_back_at_the_next_sync(store, embedder):
    engine(store, embedder).run()
    before = store.count()
    victim = next(iter(store.all_hashes()))
    from qdrant_edge import UpdateOperation

    store.shard.update(UpdateOperation.delete_points([point_id(victim)]))
    assert store.count() == before - 1
    report = engine(store, embedder).run()
    assert report.ok and report.as_json()["added"] == 1 and report.as_json()["embedded"] == 1
    assert store.count() == before and store.document(victim) is not None


def test_a_listing_is_searchable_before_any_embedding(store, embedder):
    """Progressive sync: when the embedder is first called, every listed resource is already written and
    found by name and by tags, and searches say their semantic results are partial."""
    from app.estate.lookup import LookupIndex

    seen = {}

    def watching(texts):
        if not seen:
            index = LookupIndex(store, embedder.encode_query)
            seen["count"], seen["pending"] = store.count(), store.semantic_pending()
            seen["by_name"] = [h.id for h in index.search("web-staging")]
            seen["by_tag"] = len(index.search("env=dev", limit=100))
            seen["result"] = index.search_result("orders table in staging")
        return embedder.encode(texts)

    report = SyncEngine(store, watching, [AccountConfig(name=n, profile=n, regions=REGIONS) for n in ACCOUNTS],
                        max_workers=4).run()
    assert report.ok
    total = report.as_json()["added"]
    assert seen["count"] == total and seen["pending"] == total  # all written, none embedded yet
    staging_web = [d.id for d in store.all_documents() if d.name == "web-staging"]
    assert staging_web and set(seen["by_name"][:2]) == set(staging_web)
    assert seen["by_tag"] == 2 * (2 + 1 + 1)  # dev: two queues, a table and an instance per region
    assert seen["result"].hits and seen["result"].semantic_partial and seen["result"].notes
    assert report.searchable_s <= report.duration_s and report.semantic_pending == 0
    after = LookupIndex(store, embedder.encode_query).search_result("orders table in staging")
    assert not after.semantic_partial and not after.notes


def test_only_what_changed_is_embedded_again(store, embedder):
    """A stopped instance changes its document (state) but not its dense text: written again, not embedded
    again, its vector kept. An unchanged re-sync writes and embeds nothing."""
    engine(store, embedder).run()
    ec2 = boto3.Session(profile_name="dev").client("ec2", region_name="us-west-2")
    instance = ec2.describe_instances()["Reservations"][0]["Instances"][0]
    ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    report = engine(store, embedder).run().as_json()
    assert report["updated"] >= 1 and report["embedded"] == 0 and report["semantic_pending"] == 0
    arn = next(d.id for d in store.all_documents() if d.resource_id == instance["InstanceId"])
    assert store.document(arn).state == "stopped" and DENSE in point(store, arn).vector
    again = engine(store, embedder).run().as_json()
    assert again["embedded"] == 0 and again["updated"] == 0 and again["added"] == 0


def test_a_sync_that_died_before_embedding_is_finished_by_the_next(store, embedder):
    """The embedder fails after every listing was written (a killed sync, a crashed model): the resources
    stay searchable by name and the next sync, with nothing changed in AWS, embeds exactly them."""
    def broken(texts):
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        SyncEngine(store, broken, [AccountConfig(name=n, profile=n, regions=REGIONS) for n in ACCOUNTS]).run()
    total = store.count()
    assert total > 0 and store.semantic_pending() == total
    report = engine(store, embedder).run().as_json()
    assert report["added"] == 0 and report["embedded"] == total and store.semantic_pending() == 0


def test_documents_carry_when_their_scope_last_synced(store, embedder):
    from app.estate.sync_status import StatusBook

    engine(store, embedder).run()
    doc = next(store.all_documents())
    scope = f"{doc.account_id}/{'global' if doc.service in ('s3', 'iam') else doc.region}/{doc.service}"
    last = StatusBook(store.engine).get(scope).last_success
    stored = store.document(doc.id)
    assert stored.synced_at is not None and stored.synced_at.replace(tzinfo=None) == last.replace(tzinfo=None)
    assert stored.to_identified().synced_at == stored.synced_at


def test_resource_change_events_sync_only_the_named_scopes(store, embedder):
    from app.estate.events import drain

    eng = engine(store, embedder)
    eng.run()
    dev = boto3.Session(profile_name="dev")
    sqs = dev.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="cloudops-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = dev.client("events", region_name="us-east-1")
    events.put_rule(Name="changes", EventPattern=json.dumps({"source": ["aws.dynamodb"]}))
    events.put_targets(Rule="changes", Targets=[{"Id": "q", "Arn": arn}])
    table = dev.client("dynamodb", region_name="us-east-1")
    table_arn = table.describe_table(TableName="dev-orders")["Table"]["TableArn"]
    table.tag_resource(ResourceArn=table_arn, Tags=[{"Key": "owner", "Value": "data"}])
    events.put_events(Entries=[{"Source": "aws.dynamodb", "DetailType": "Tag change", "Detail": "{}"}])
    refs = drain(sqs, url, default_account="333333333333")
    report = eng.run_events(refs)
    assert [s.scope for s in report.scopes] == ["333333333333/us-east-1/dynamodb"]
    assert report.as_json()["updated"] == 1  # the event path reads details: the new tag is seen at once
    assert store.document(table_arn).tags["owner"] == "data"


def test_the_hnsw_build_runs_in_a_child_process_and_keeps_the_writes_made_meanwhile(tmp_path, monkeypatch):
    """Edge holds the GIL while it builds HNSW, so the store builds it in a child process on a copy of the
    shard; searches and writes go on in this process meanwhile, and the adopted copy holds them all."""
    import threading

    import numpy as np

    from app.estate import resource_store
    from app.estate.documents import ResourceDocument
    from app.estate.lookup import LookupIndex

    monkeypatch.setattr(resource_store, "OPTIMIZE_MIN_POINTS", 300)

    def queue(i: int) -> ResourceDocument:
        arn = f"arn:aws:sqs:us-east-1:111111111111:q{i}"
        return ResourceDocument(id=arn, arn=arn, resource_type="sqs_queue", service="sqs", resource_id=f"q{i}",
                                name=f"orders-queue-{i}", account_id="111111111111", account_name="production",
                                region="us-east-1", tags={"env": "prod"}).finalise()

    rng = np.random.default_rng(0)

    def vectors(docs):
        v = rng.normal(size=(len(docs), 384)).astype(np.float32)
        return dict(zip([d.id for d in docs], v / np.linalg.norm(v, axis=1, keepdims=True)))

    store = ResourceStore(tmp_path / "index")
    try:
        first = [queue(i) for i in range(8000)]  # above Edge's indexing threshold (~6.6k vectors of 384-d)
        store.apply_scope("111111111111/us-east-1/sqs", first, vectors(first))
        before = store._shard_path
        assert store.needs_optimizing() and store.optimize_in_background()
        ticks = []
        ticker = threading.Thread(target=lambda: [ticks.append(time.sleep(0.01)) for _ in range(50)])
        ticker.start()
        later = [queue(i) for i in range(8000, 8100)]  # written while the copy is being built
        store.apply_scope("111111111111/us-east-2/sqs", later, vectors(later))
        hits = LookupIndex(store).search("orders-queue-8050")
        ticker.join()
        store.wait_for_optimizer(timeout=300)
        assert len(ticks) == 50  # this process kept running
        assert hits and hits[0].id == later[50].id
        assert store._shard_path != before  # the optimized copy is live (the old one goes when the store closes)
        assert store.count() == 8100 and store.semantic_pending() == 0
        info = store.shard.info()
        assert info.indexed_vectors_count - 2 * info.points_count >= 8000  # the dense vectors are in a graph
        assert not store.needs_optimizing()
        assert LookupIndex(store).search("orders-queue-8050")[0].id == later[50].id
    finally:
        store.close()
    assert not before.exists()
    reopened = ResourceStore(tmp_path / "index")  # CURRENT names the optimized shard
    try:
        assert reopened.count() == 8100
    finally:
        reopened.close()


def test_an_account_that_cannot_be_reached_marks_the_data_it_synced_before_as_failed(store, embedder, aws):
    """An account failing before any scope is listed (its profile gone, its login expired) left its scopes'
    rows as they were, so the data's age called them fresh; now the last sync of each says it failed."""
    from app.estate.freshness import Freshness
    from app.estate.sync_status import StatusBook

    engine(store, embedder).run()
    staging = next(d for d in store.all_documents() if d.account_name == "staging").to_identified()
    assert Freshness.of_store(store, 3600).why_stale(staging) is None
    gone = [AccountConfig(name="staging", profile="no-such-profile", regions=REGIONS)]
    report = SyncEngine(store, embedder.encode, gone, max_workers=4).run()
    assert report.errors and report.errors[0]["account"] == "staging"
    said = Freshness.of_store(store, 3600).why_stale(staging)
    assert said is not None and "last sync of staging/" in said and "failed" in said
    production = next(d for d in store.all_documents() if d.account_name == "production").to_identified()
    assert Freshness.of_store(store, 3600).why_stale(production) is None  # the other accounts are untouched
    assert all(s.last_success is not None for s in StatusBook(store.engine).all())  # the good syncs are kept
