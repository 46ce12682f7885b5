"""The verb and noun lexicon (agent.lexicon): plurals of type nouns, and requests to list resources of
a type, which describe them, as opposed to listing what is inside one (objects, subscriptions)."""

from __future__ import annotations

import pytest

from agent.lexicon import head_types, lists_resources, ordered_verbs, types_in


@pytest.mark.parametrize("text, rtype", [
    ("stop the databases", "rds_db_instance"), ("all instances", "ec2_instance"), ("the queues", "sqs_queue"),
    ("dynamodb tables", "dynamodb_table"), ("boxes in dev", "ec2_instance"), ("load balancers", "elbv2_load_balancer"),
])
def test_plural_type_nouns_point_at_their_type(text, rtype):
    # The stemmer turns "databases" into "databas" and "instances" into "instanc": the singular alone missed them.
    assert rtype in types_in(text) and rtype in head_types(text)


@pytest.mark.parametrize("prompt", [
    "list all instances in oregon", "list the databases in staging", "ls lambdas in prod", "show all queues",
    "list every lambda function in production", "show me all the ec2 instances in dev", "enumerate the dynamodb tables",
    "list the instances with env=dev", "list all stopped instances",
])
def test_a_listing_of_resources_is_a_describe(prompt):
    assert lists_resources(prompt)
    assert ordered_verbs(prompt) == ["describe"]  # "stopped" selects instances, it asks for no stop


@pytest.mark.parametrize("prompt, first_verb", [
    ("list the objects in acme-prod-access-logs", "list"), ("list the subscriptions on the order events topic", "list"),
    ("show the subscriptions of all topics", "describe"), ("show me the orders queue", "describe"),
    ("stop all running instances in dev", "stop"), ("list all buckets", "list"),
])
def test_what_is_not_a_listing_of_resources(prompt, first_verb):
    assert not lists_resources(prompt)
    assert ordered_verbs(prompt)[0] == first_verb
