"""The context builder (app.estate.context): which resources of the local index a prompt sends to the planner."""

from __future__ import annotations

import pytest

from app.estate.context import MAX_LISTED, MAX_RESOURCES, identify
from app.estate.documents import ResourceDocument
from app.estate.lookup import LookupIndex
from app.estate.resource_store import ResourceStore

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
    store = ResourceStore(tmp_path / "index")
    vectors = dict(zip([d.id for d in docs], embedder.encode([d.text for d in docs])))
    for scope in {f"{d.account_id}/{d.region}/{d.service}" for d in docs}:
        store.apply_scope(scope, [d for d in docs if f"{d.account_id}/{d.region}/{d.service}" == scope], vectors,
                          write_qdrant=False)
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
