"""The context builder (app.estate.context): which resources of the local index a prompt sends to the planner."""

from __future__ import annotations

import pytest
from conftest import store_of

from app.estate.context import MAX_LISTED, MAX_RESOURCES, identify
from app.estate.documents import ResourceDocument
from app.estate.lookup import LookupIndex

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(tmp_path, stack):
    """Twelve EC2 instances of one account and region (every third stopped), a database beside them, and
    one instance in another region: a listing must send all twelve, past the usual eight."""
    embedder = stack.index.embedder

    def ec2(n: int, region: str = "us-west-2") -> ResourceDocument:
        arn = f"arn:aws:ec2:{region}:333333333333:instance/i-{n:04d}"
        return ResourceDocument(id=arn, arn=arn, resource_type="ec2_instance", service="ec2", resource_id=f"i-{n:04d}",
                                name=f"worker-{n:02d}", account_id="333333333333", account_name="dev", region=region,
                                state="stopped" if n % 3 == 0 else "running", tags={"team": "batch"}).finalise()

    db_arn = "arn:aws:rds:us-west-2:333333333333:db:dev-scratch-pg"
    docs = [ec2(n) for n in range(12)] + [ec2(99, "us-east-1"), ResourceDocument(
        id=db_arn, arn=db_arn, resource_type="rds_db_instance", service="rds", resource_id="dev-scratch-pg",
        name="dev-scratch-pg", account_id="333333333333", account_name="dev", region="us-west-2",
        state="available").finalise()]
    store = store_of(tmp_path / "index", docs, embedder)
    index = LookupIndex.load(store, embedder.encode_query)
    yield index, store
    store.close()


def test_a_listing_sends_every_resource_the_filters_let_through(fleet):
    index, store = fleet
    listed = identify("list the instances in oregon", index, store)
    assert len(listed) == 12 > MAX_RESOURCES and len(listed) <= MAX_LISTED
    assert {r.resource_type for r in listed} == {"ec2_instance"} and {r.region for r in listed} == {"us-west-2"}
    stopped = identify("list the stopped instances in oregon", index, store)
    assert sorted(r.name for r in stopped) == ["worker-00", "worker-03", "worker-06", "worker-09"]


def test_anything_else_sends_the_few_closest_hits(fleet):
    index, store = fleet
    assert len(identify("stop the instances in oregon", index, store)) <= MAX_RESOURCES
    assert [r.name for r in identify("stop worker-07", index, store)] == ["worker-07"]


@pytest.fixture
def words_estate(tmp_path, stack):
    """Names an operator types as words (redis-cache-box, pg-dumps-bucket: type nouns inside them), one name in
    production only, and databases told apart by their app tag."""
    from app.estate.documents import make_document

    embedder = stack.index.embedder
    accounts = {"production": "111111111111", "dev": "333333333333"}

    def make(rtype: str, name: str, account: str, region: str = "us-west-2", **tags) -> ResourceDocument:
        arn = f"arn:aws:{rtype.split('_')[0]}:{region}:{accounts[account]}:{rtype}/{name}"
        return make_document(resource_type=rtype, arn=arn, resource_id=name, name=name, account_id=accounts[account],
                             account_name=account, region=region, tags={"env": account, **tags},
                             attributes={"engine": "postgres"} if rtype == "rds_db_instance" else {})

    docs = [make("ec2_instance", "redis-cache-box", "production"), make("s3_bucket", "pg-dumps-bucket", "production"),
            make("rds_db_instance", "pg-instance-main1", "production", app="main"),
            make("rds_db_instance", "pg-instance-main2", "production", app="main-reporting"),
            make("rds_db_instance", "billing-db", "production", app="billing"),
            make("rds_db_instance", "payments-aurora-instance-1", "production", "us-east-1", app="payments"),
            make("rds_db_instance", "dev-scratch-pg", "dev"), make("ec2_instance", "bastion", "dev")]
    store = store_of(tmp_path / "index", docs, embedder)
    yield LookupIndex.load(store, embedder.encode_query), store
    store.close()


@pytest.mark.parametrize("prompt, where", [("Stop pg-instance-main1 --region us-east-1", "us-west-2"),
                                           ("stop pg-instance-main1 in dev", "production")])
def test_a_resource_named_exactly_is_sent_even_where_a_hint_points_elsewhere(words_estate, prompt, where):
    """Issue 12, finding 4: the hint's filter hid the named resource and a look-alike was planned on."""
    index, store = words_estate
    sent = identify(prompt, index, store)
    named = [r for r in sent if r.name == "pg-instance-main1"]
    assert named and where in (named[0].account_name, named[0].region)


@pytest.mark.parametrize("prompt, name, rtype", [("reboot the redis cache box", "redis-cache-box", "ec2_instance"),
                                                 ("turn on versioning for the pg dumps bucket", "pg-dumps-bucket", "s3_bucket")])
def test_a_name_typed_as_words_with_type_nouns_inside_is_that_resource(words_estate, prompt, name, rtype):
    index, store = words_estate
    sent = identify(prompt, index, store)
    assert sent[0].name == name and sent[0].resource_type == rtype


def test_a_tag_said_in_words_filters_and_without_a_carrier_the_prompt_is_looked_up_without_it(words_estate):
    index, store = words_estate
    assert [r.name for r in identify("stop the database for app billing", index, store)] == ["billing-db"]
    assert identify("stop the database for app nosuchapp", index, store)  # candidates; the planner says none carries it


def test_a_request_whose_words_look_like_a_broken_tag_expression_still_finds_what_it_names(fleet):
    """'(http tokens = required)' is a value in a request, not a filter: the search's tag-expression error
    ended the whole request ("the client failed: QueryError: unexpected ')'")."""
    index, store = fleet
    found = identify("enforce IMDSv2 on worker-05 (http tokens = required)", index, store)
    assert found and found[0].resource_id == "i-0005"


def test_a_part_asked_for_by_its_relation_is_sent_with_the_named_resource(tmp_path, stack):
    """'purge the dlq of payments-queue': the queue's dead-letter queue must reach the planner, or it can only
    ask; the queue's other neighbours are not sent for it."""
    embedder = stack.index.embedder

    def queue(name: str, **relations) -> ResourceDocument:
        arn = f"arn:aws:sqs:us-west-2:111111111111:{name}"
        return ResourceDocument(id=arn, arn=arn, resource_type="sqs_queue", service="sqs", resource_id=arn,
                                name=name, account_id="111111111111", account_name="production", region="us-west-2",
                                relations=relations).finalise()

    docs = [queue("payments-queue", dead_letter_queue=["arn:aws:sqs:us-west-2:111111111111:zz-parking-lot"]),
            queue("zz-parking-lot"), queue("orders-queue")]
    store = store_of(tmp_path / "index", docs, embedder)
    index = LookupIndex.load(store, embedder.encode_query)
    try:
        names = [r.name for r in identify("purge the dlq of payments-queue", index, store)]
        assert "payments-queue" in names and "zz-parking-lot" in names
        assert "zz-parking-lot" not in [r.name for r in identify("purge payments-queue", index, store)]
    finally:
        store.close()
