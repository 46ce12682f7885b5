"""Which identified resources a prompt names (agent.mentions)."""

from __future__ import annotations

from agent.mentions import find_mentions
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
