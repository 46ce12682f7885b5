"""The prompt parsed once (agent.prompt): places, accounts, environments, states, type nouns, names typed
with spaces, tag phrases, quoted values, question form, "all" and "everything" — and the client's lookup
and the planner reading the same words with the same tables."""

from __future__ import annotations

import pytest

from agent.prompt import parse_prompt, question_form, quoted_values

ACCOUNTS = {"production": "111111111111", "staging": "222222222222", "dev": "333333333333",
            "media-preprod": "444444444444"}
REGIONS = ["us-west-2", "us-east-1", "eu-west-1", "eu-central-1"]
NAMES = {"redis-cache-box", "pg-dumps-bucket", "pg-instance-main1", "bastion", "orders", "staging-notes"}


def parse(prompt: str):
    return parse_prompt(prompt, accounts=ACCOUNTS, regions=REGIONS, is_name=NAMES.__contains__)


@pytest.mark.parametrize("prompt, value", [
    ('publish "db won\'t start, investigating" to ops-alerts', "db won't start, investigating"),
    ("publish 'it's done' to ops-alerts", "it's done"),
    ("send “all systems normal” now", "all systems normal"),
    ("name it `nightly-1`", "nightly-1"),
])
def test_quoted_values_are_whole(prompt, value):
    assert [q.value for q in quoted_values(prompt)] == [value]


@pytest.mark.parametrize("prompt", ["stop the orders app's database", "it's the users' table", 'say "unfinished'])
def test_apostrophes_and_unbalanced_quotes_hold_no_value(prompt):
    assert quoted_values(prompt) == []


@pytest.mark.parametrize("prompt, regions", [
    ("list instances in oregon", {"us-west-2"}), ("stop the batch workers in n. virginia", {"us-east-1"}),
    ("what state is the core-network stack in (usw2)?", {"us-west-2"}), ("Stop it --region us-east-1", {"us-east-1"}),
    ("list the queues in europe", {"eu-west-1", "eu-central-1"}), ("list the queues in asia", set()),
])
def test_regions_by_code_place_name_and_short_code(prompt, regions):
    assert parse(prompt).region_set(REGIONS) == regions


@pytest.mark.parametrize("prompt, accounts", [
    ("stop it in staging", {"222222222222"}), ("stop it on prod", {"111111111111"}),
    ("reboot it in the dev account", {"333333333333"}), ("describe it in preprod", {"444444444444"}),
    ("stop it in 999999999999", {"999999999999"}), ("read staging-notes", set()),
])
def test_accounts_by_name_alias_part_and_id_but_not_inside_a_name(prompt, accounts):
    assert parse(prompt).accounts == accounts


def test_an_arn_or_url_that_names_nothing_known_still_says_where():
    parsed = parse("aws sqs purge-queue --queue-url https://sqs.us-west-2.amazonaws.com/222222222222/orders-queue")
    assert parsed.region_set(REGIONS) == {"us-west-2"} and parsed.accounts == {"222222222222"}
    assert all(p.embedded for p in parsed.places)


def test_type_nouns_singular_plural_and_not_inside_names_or_quotes():
    parsed = parse('reboot the redis cache box and the instances, then publish "db is back" to the topic')
    assert [(n.span.text, n.plural) for n in parsed.type_nouns] == [("instances", True), ("topic", False)]
    assert [s.text for s in parsed.spaced_names] == ["redis-cache-box"]
    assert parse("turn on versioning for the pg dumps bucket").head_types == set()  # "pg" and "bucket" are the name's


@pytest.mark.parametrize("prompt, keys, value", [
    ("stop the production postgres database for app billing", ("app", "application"), "billing"),
    ("stop the orders app's database in staging", ("app", "application"), "orders"),
    ("reboot team data's instances", ("team",), "data"),
    ("list the data team's lambdas", ("team",), "data"),
    ("list instances owned by jdoe", ("owner",), "jdoe"),
])
def test_tags_said_in_words(prompt, keys, value):
    assert [(t.keys, t.value) for t in parse(prompt).tag_phrases] == [(keys, value)]


@pytest.mark.parametrize("prompt", ["restart the app server", "stop the production app's database", "our team's queue"])
def test_words_that_are_no_tag_phrase(prompt):
    assert parse(prompt).tag_phrases == []


@pytest.mark.parametrize("prompt, kind", [
    ("is the bastion running?", "yes_no"), ("which instances are stopped?", "which"),
    ("what databases do we have in production?", "which"), ("how many lambdas run python3.9?", "count"),
    ("what engine version is orders-db on?", "what"), ("hey, are there any stopped databases", "which"),
    ("give me the cost of pg-instance-main1", "what"), ("bastion running?", "what"),
])
def test_questions_and_their_kind(prompt, kind):
    assert question_form(prompt).kind == kind


@pytest.mark.parametrize("prompt", [
    "can you stop pg-instance-main1?", "could versioning be switched on for acme-prod-assets?",
    "the runner is off again, can you turn it on for me?", "stop the bastion", "please reboot web-server-1",
])
def test_requests_are_not_questions(prompt):
    assert question_form(prompt) is None


def test_names_the_operator_typed_and_values_that_are_not_names():
    parsed = parse("snapshot pg-instance-main3 named nightly-7 with python3.9 on db.r6g.large in us-east-1")
    assert [n.text for n in parsed.names] == ["pg-instance-main3"]
    assert [n.text for n in parse("the redis cache box").names] == ["redis-cache-box"]


def test_all_and_everything():
    assert parse("terminate everything in dev").everything and parse("stop all instances").every
    assert not parse("stop all instances").everything


def test_the_lookup_and_the_planner_read_the_same_places(tmp_path):
    """"oregon" narrowed the lookup but not the planner's hints: now one parser serves both."""
    from agent.mentions import find_hints
    from agent.protocol import IdentifiedResource, UserContext

    resources = [IdentifiedResource(resource_type="ec2_instance", resource_id="i-1", name="web-1",
                                    account_id="111111111111", account_name="production", region="us-west-2")]
    hints = find_hints("stop web-1 in oregon", UserContext(aws_accounts=[]), resources)
    assert hints.regions == {"us-west-2"}
    hints = find_hints("stop web-1 on prod (usw2)", UserContext(aws_accounts=[]), resources)
    assert hints.regions == {"us-west-2"} and hints.accounts == {"111111111111"}


@pytest.mark.parametrize("prompt, head", [
    ("lambda that rotates the database password", {"lambda_function"}),
    ("auth service queue", {"sqs_queue"}),                 # a run of type nouns: the last is the head
    ("k8s cluster for prod", {"eks_cluster"}),             # ... unless it is generic: the specific one
    ("production postgres database", {"rds_db_instance"}),
    ("rotate db creds", set()),                            # what a resource has is no resource
    ("where we keep database backups", set()),
])
def test_the_head_noun_of_a_query(prompt, head):
    assert parse_prompt(prompt).head_types == head


@pytest.mark.parametrize("prompt, excluded, names, states", [
    ("stop every instance in staging except pg-instance-main1", ["pg-instance-main1"], [], []),
    ("snapshot the databases other than pg-instance-main1 and bastion", ["pg-instance-main1"], ["bastion"], []),
    ("restart the instances that aren't stopped", ["stopped"], [], []),
    ("purge the fifo queue that isn't the dlq", ["dlq"], [], []),
    ("list queues that aren't in prod", ["prod"], [], []),  # an environment left out, not a hint
    ("which instances aren't running?", ["running"], [], []),  # a negated state is no state of the request
    ("volumes that aren't attached to anything", [], [], []),  # a link, not an exclusion
    ("is pg-instance-main1 not running?", [], ["pg-instance-main1"], ["running"]),  # asks about it: nothing left out
    ("are any databases not available?", ["available"], [], []),
    ("stop orders-db-1, not orders-db-2", ["orders-db-2"], ["orders-db-1"], []),
    ("stop all databases but orders-db-2", ["orders-db-2"], [], []),
    ("reboot web-1 (leave web-2 running)", ["web-2"], ["web-1"], []),
    ("stop web-1, don't stop web-2", ["web-2"], ["web-1"], []),
    ("delete orders-db-1 without a final snapshot", [], ["orders-db-1"], []),  # an option, not an exclusion
    ("env=prod but not app=main", [], [], []),  # the tag expression's own negation
])
def test_an_exclusion_is_never_a_name_or_a_state_of_the_request(prompt, excluded, names, states):
    parsed = parse(prompt)
    assert [e.text for e in parsed.excluded] == excluded
    assert [n.text for n in parsed.names] == names
    assert [s for s, _ in parsed.states] == states


@pytest.mark.parametrize("prompt, excluded", [
    ("which queues aren't in production?", ["production"]),
    ("stop the instances not in us-east-1", ["us-east-1"]),
    ("list the buckets outside europe", ["europe"]),
])
def test_a_place_said_with_a_negation_is_left_out_not_a_hint(prompt, excluded):
    parsed = parse(prompt)
    assert [e.text for e in parsed.excluded] == excluded
    assert not parsed.places and not parsed.environments
