"""Questions answered from the local index (app.estate.answers), with the data's age; requests get no
answer, and what the index does not hold is not answered."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import store_of

from app.estate.answers import answer_question
from app.estate.documents import make_document
from app.estate.lookup import LookupIndex

pytestmark = pytest.mark.slow
PLACES = {"production": "111111111111", "staging": "222222222222", "dev": "333333333333"}


def doc(rtype: str, name: str, account: str, region: str = "us-west-2", state: str | None = None, **attributes):
    account_id = PLACES[account]
    arn = f"arn:aws:{rtype.split('_')[0]}:{region}:{account_id}:{rtype}/{name}"
    return make_document(resource_type=rtype, arn=arn, resource_id=name if rtype != "ec2_instance" else f"i-{abs(hash(arn)) % 10**8}",
                         name=name, account_id=account_id, account_name=account, region=region, state=state,
                         tags={"env": account}, attributes=attributes)


@pytest.fixture
def estate(tmp_path, stack):
    embedder = stack.index.embedder
    docs = [doc("ec2_instance", "bastion", "production", state="running"),
            doc("ec2_instance", "bastion", "dev", state="running"),
            doc("ec2_instance", "web-server-3", "production", state="stopped"),
            doc("ec2_instance", "ci-build-runner", "dev", state="stopped"),
            doc("ec2_instance", "web-server-1", "production", state="running"),
            doc("rds_db_instance", "orders-db", "production", state="available", engine="postgres", engine_version="14.10"),
            doc("rds_db_instance", "orders-db", "staging", state="available", engine="postgres", engine_version="14.10"),
            doc("rds_db_instance", "billing-mysql", "production", state="available", engine="mysql", engine_version="8.0.35"),
            doc("lambda_function", "image-resizer", "production", runtime="python3.12", memory_mb=1024, timeout_s=30),
            doc("lambda_function", "orders-processor", "production", runtime="python3.12", memory_mb=256, timeout_s=30),
            doc("lambda_function", "legacy-etl", "staging", runtime="python3.9", memory_mb=512, timeout_s=300),
            doc("sns_topic", "ops-alerts", "production", subscriptions_confirmed=2)]
    store = store_of(tmp_path / "index", docs, embedder)
    yield LookupIndex.load(store, embedder.encode_query), store
    store.close()


def ask(estate, prompt: str, **kw):
    index, store = estate
    return answer_question(prompt, index, store, **kw)


def test_is_it_running_answers_for_every_place_with_the_data_age(estate):
    answer = ask(estate, "is the bastion running?")
    assert answer.text.startswith("Yes") and "production / us-west-2" in answer.text and "dev / us-west-2" in answer.text
    assert answer.resources == ["bastion"] and answer.as_of is not None
    later = ask(estate, "is the bastion running?", now=answer.as_of + timedelta(minutes=4, seconds=5))
    assert "synced 4 min ago" in later.text


def test_which_ones_are_in_a_state(estate):
    answer = ask(estate, "which instances are stopped?")
    assert answer.text.startswith("2 stopped instances") and sorted(answer.resources) == ["ci-build-runner", "web-server-3"]
    assert ask(estate, "is web-server-3 up?").text.startswith("No")


def test_what_do_we_have_in_a_place(estate):
    answer = ask(estate, "what databases do we have in production?")
    assert answer.text.startswith("2 databases in production") and sorted(answer.resources) == ["billing-mysql", "orders-db"]


def test_how_many_by_an_attribute_value_and_which_values_there_are(estate):
    assert ask(estate, "how many lambdas run python3.9?").resources == ["legacy-etl"]
    none = ask(estate, "how many lambdas run python3.11?")
    assert none.text.startswith("No function") and "python3.12 (2)" in none.text and "python3.9 (1)" in none.text


def test_an_attribute_of_a_named_resource(estate):
    answer = ask(estate, "what engine version is orders-db on?")
    assert "engine version 14.10" in answer.text and "staging" in answer.text and "production" in answer.text
    answer = ask(estate, "what memory and timeout does image-resizer have?")
    assert "memory 1024 MB" in answer.text and "timeout 30 s" in answer.text


def test_a_place_that_contradicts_where_it_is_and_a_name_that_matches_nothing(estate):
    assert "not in staging" in ask(estate, "is the bastion in staging running?").text
    assert ask(estate, "is pg-instance-main3 running?").text == "Nothing named pg-instance-main3 is in the index."


@pytest.mark.parametrize("prompt", ["stop the bastion", "can you reboot web-server-1?",
                                    "who is subscribed to ops-alerts?", "which instances are public?",
                                    "any lambdas with errors in the last hour?"])
def test_requests_and_what_the_index_does_not_hold_get_no_answer(estate, prompt):
    assert ask(estate, prompt) is None


@pytest.fixture
def facts_estate(tmp_path, stack):
    """Resources with what the index keeps besides attributes: tags, constraints, relations; a cluster and
    its services."""
    embedder = stack.index.embedder
    cluster_arn = "arn:aws:ecs:us-west-2:111111111111:cluster/prod-cluster"

    def d(rtype, name, account, region="us-west-2", **kw):
        account_id = PLACES[account]
        arn = kw.pop("arn", None) or f"arn:aws:{rtype.split('_')[0]}:{region}:{account_id}:{rtype}/{name}"
        return make_document(resource_type=rtype, arn=arn, resource_id=name, name=name, account_id=account_id,
                             account_name=account, region=region, **kw)

    docs = [d("rds_db_instance", "orders-db", "production", state="available",
              tags={"env": "production", "owner": "jdoe"}, relations={"read_replicas": ["orders-db-replica-1"]},
              constraints={"deletion_protection": True, "has_read_replicas": True, "is_read_replica": False}),
            d("rds_db_instance", "scratch-pg", "dev", state="available", tags={"team": "data"},
              constraints={"deletion_protection": False}),
            d("ec2_instance", "jenkins-controller", "staging", region="us-east-1", state="running"),
            d("ecs_cluster", "prod-cluster", "production", state="active", arn=cluster_arn),
            d("ecs_service", "api-service", "production", state="active", relations={"cluster": [cluster_arn]}),
            d("ecs_service", "checkout-worker", "production", state="active", relations={"cluster": [cluster_arn]}),
            d("ecs_service", "other-service", "production", state="active",
              relations={"cluster": ["arn:aws:ecs:us-west-2:111111111111:cluster/other"]}),
            d("lambda_function", "orders-processor", "production", tags={"team": "commerce"}),
            d("lambda_function", "image-resizer", "production", tags={"team": "media"})]
    store = store_of(tmp_path / "index", docs, embedder)
    yield LookupIndex.load(store, embedder.encode_query), store
    store.close()


def test_facts_the_index_keeps_beyond_attributes_answer_questions_about_a_named_resource(facts_estate):
    assert "deletion protection yes" in ask(facts_estate, "is deletion protection on for orders-db?").text
    assert "deletion protection no" in ask(facts_estate, "is deletion protection enabled on scratch-pg?").text
    replicas = ask(facts_estate, "does orders-db have any read replicas?").text
    assert "read replicas orders-db-replica-1" in replicas and "is read replica" not in replicas
    assert "owner jdoe" in ask(facts_estate, "who owns orders-db?").text
    assert "team data" in ask(facts_estate, "who owns scratch-pg?").text  # no owner tag: the team's
    assert ask(facts_estate, "which region is jenkins-controller in?").text.startswith(
        "jenkins-controller is in staging / us-east-1")


def test_the_members_of_a_named_resource_and_sets_by_tag(facts_estate):
    services = ask(facts_estate, "which ecs services run in prod-cluster?")
    assert services.text.startswith("2 ECS services in prod-cluster") and "other-service" not in services.text
    assert ask(facts_estate, "which lambda functions belong to team commerce?").resources == ["orders-processor"]
    assert ask(facts_estate, "what resources are tagged owner=jdoe?").resources == ["orders-db"]
