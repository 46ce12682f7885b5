"""Which identified resources a prompt names (agent.mentions)."""

from __future__ import annotations

import pytest

from agent.mentions import find_mentions, is_excluded
from agent.protocol import IdentifiedResource


def queue(name: str) -> IdentifiedResource:
    url = f"https://sqs.us-east-1.amazonaws.com/111111111111/{name}"
    return IdentifiedResource(resource_type="sqs_queue", resource_id=url, name=name,
                              arn=f"arn:aws:sqs:us-east-1:111111111111:{name}", account_id="111111111111",
                              region="us-east-1")


def named(prompt: str, resources: list[IdentifiedResource]) -> list[str]:
    return [m.resource.name for m in find_mentions(prompt, resources)]


def test_a_name_is_a_whole_token():
    resources = [queue("web-server-1"), queue("web-server-10")]
    assert named("purge web-server-10 now", resources) == ["web-server-10"]


def test_a_name_may_be_typed_with_spaces_for_its_dashes_and_the_longer_name_wins():
    resources = [queue("payments-queue"), queue("payments-queue-dlq")]
    assert named("how many messages are sitting in the payments queue?", resources) == ["payments-queue"]
    assert named("redrive the payments queue dlq", resources) == ["payments-queue-dlq"]
    assert named("redrive payments_queue", resources) == ["payments-queue"]
    assert named("the payments are queued", resources) == []  # words of a name, not the name


def test_a_part_is_a_relation_said_definitely_never_an_attribute_or_a_new_thing():
    from agent.mentions import find_mentions, named_part
    from agent.prompt import parse_prompt
    from agent.protocol import IdentifiedResource

    db = IdentifiedResource(resource_type="rds_db_instance", resource_id="orders-db", name="orders-db",
                            attributes={"instance_class": "db.r6g.large"}, relations={"read_replicas": ["orders-db-ro"]})
    replica = IdentifiedResource(resource_type="rds_db_instance", resource_id="orders-db-ro", name="orders-db-ro")

    def part(prompt):
        parsed = parse_prompt(prompt)
        mention = next(m for m in find_mentions(prompt, [db], parsed) if m.resource is db)
        return named_part(parsed, mention, [db, replica])

    found = part("reboot the read replicas of orders-db")
    assert found.said == "read replicas" and found.referenced == [replica]
    assert part("reboot orders-db's read replica").referenced == [replica]
    assert part("create a read replica of orders-db") is None          # a new one
    assert part("change the instance class of orders-db") is None      # an attribute of the database itself
    assert [m.resource for m in find_mentions("reboot the read replicas of orders-db", [db, replica])] == [replica]


def _resource(**fields) -> IdentifiedResource:
    base = {"resource_type": "ec2_instance", "resource_id": "i-0abc", "name": "web-1", "account_id": "111111111111",
            "account_name": "production", "region": "us-west-2", "current_state": "running", "tags": {}}
    return IdentifiedResource(**{**base, **fields})


@pytest.mark.parametrize("words, fields, excluded", [
    (["web-1"], {}, True), (["web"], {}, True), (["web-10"], {}, False), (["i-0abc"], {}, True),
    (["running"], {}, True), (["stopped"], {}, False),
    (["prod"], {}, True),  # by the account's name
    (["prod"], {"account_name": "sandbox", "tags": {"Environment": "Production"}}, True),  # by tag
    (["staging"], {}, False), (["nonprod"], {"account_name": "dev"}, True), (["nonprod"], {}, False),
    (["oregon"], {}, True), (["us-west-2"], {}, True), (["us-east-1"], {}, False), (["europe"], {}, False),
    (["production"], {"account_name": "shared"}, False), (["shared"], {"account_name": "shared"}, True),
])
def test_what_an_exclusion_leaves_out(words, fields, excluded):
    assert is_excluded(_resource(**fields), words) is excluded
