"""Choosing targets (agent.targets): a resource the prompt names is never replaced by another; a hint that
contradicts where it is gets a question that says so; a name that matches nothing is said to; names typed as
words, abbreviated or as a plural stem; tags said in words; "everything"; the absolute match floor."""

from __future__ import annotations

import pytest

from agent.mentions import find_hints, find_mentions, request_prompt
from agent.protocol import IdentifiedResource, UserContext
from agent.targets import MATCH_FLOOR, abbreviates, choose_targets, same_name

CONTEXT = UserContext(aws_accounts=[{"name": "production", "account_id": "111111111111", "regions": ["us-west-2"]},
                                    {"name": "staging", "account_id": "222222222222", "regions": ["us-west-2"]},
                                    {"name": "dev", "account_id": "333333333333", "regions": ["us-west-2"]}])
ACCOUNTS = {"111111111111": "production", "222222222222": "staging", "333333333333": "dev"}


def db(name: str, account="111111111111", region="us-west-2", score=None, engine="postgres", **tags):
    return IdentifiedResource(resource_type="rds_db_instance", resource_id=name, name=name, account_id=account,
                              account_name=ACCOUNTS[account], region=region, engine=engine, tags=tags, match_score=score)


def ec2(name: str, n: int, account="111111111111", region="us-east-1", score=None, **tags):
    return IdentifiedResource(resource_type="ec2_instance", resource_id=f"i-{n:04d}", name=name, account_id=account,
                              account_name=ACCOUNTS[account], region=region, tags=tags, match_score=score)


def choose(prompt: str, types: list[str], resources: list[IdentifiedResource], read_only: bool = False):
    parsed = request_prompt(prompt, CONTEXT, resources)
    mentions = find_mentions(prompt, resources, parsed)
    hints = find_hints(parsed, CONTEXT, resources)
    return choose_targets(prompt, types, resources, mentions, hints, "database" if "rds" in types[0] else "instance",
                          read_only=read_only, parsed=parsed)


def names(choice) -> list[str]:
    return sorted(t.display_name for t in choice.targets)


def test_a_hint_that_contradicts_the_named_resource_is_a_question_saying_where_it_is():
    resources = [db("pg-instance-main1", score=1.0), db("payments-aurora-instance-1", region="us-east-1", score=0.11)]
    choice = choose("Stop pg-instance-main1 --region us-east-1", ["rds_db_instance"], resources)
    assert not choice.targets and "production / us-west-2" in choice.clarification.question
    assert "us-east-1" in choice.clarification.question
    choice = choose("stop pg-instance-main1 in dev", ["rds_db_instance"],
                    [db("pg-instance-main1", score=1.0), db("dev-scratch-pg", "333333333333", score=0.12)])
    assert not choice.targets and "not in dev" in choice.clarification.question


def test_a_name_that_matches_nothing_is_said_to_and_near_names_are_offered():
    resources = [db("pg-instance-main1", score=0.28), db("pg-instance-main2", score=0.28)]
    choice = choose("stop pg-instance-main3", ["rds_db_instance"], resources)
    assert not choice.targets
    question = choice.clarification.question
    assert "pg-instance-main3" in question and "matches nothing" in question and "pg-instance-main1" in question
    # The server only has what the client sent: a look-alike in another place is never the target either.
    choice = choose("stop pg-instance-main1", ["rds_db_instance"], [db("payments-aurora-instance-1", score=0.11)])
    assert not choice.targets and "pg-instance-main1" in choice.clarification.question


def test_a_mistyped_name_is_the_resource_it_spells_but_another_number_is_another_resource():
    assert same_name("qa-mysql01", "qa-mysql-01") and same_name("web-sever-2", "web-server-2")
    assert not same_name("pg-instance-main3", "pg-instance-main1")
    choice = choose("start qa-mysql01 pls", ["rds_db_instance"], [db("qa-mysql-01", "222222222222", score=0.4)])
    assert names(choice) == ["qa-mysql-01"]


def test_a_name_abbreviated_to_some_of_its_words_with_its_number():
    main1, main2 = db("pg-instance-main1", score=0.14), db("pg-instance-main2", score=0.15)
    choice = choose("stop pg main 1 pls", ["rds_db_instance"], [main2, main1])
    assert names(choice) == ["pg-instance-main1"]
    assert not abbreviates(request_prompt("stop pg main 3", CONTEXT, []), main1)


def test_a_plural_of_a_name_stem_takes_each_numbered_resource():
    workers = [ec2("batch-worker-1", 1, score=0.23), ec2("batch-worker-2", 2, score=0.23), ec2("bastion", 3, score=0.1)]
    choice = choose("stop the batch workers", ["ec2_instance"], workers)
    assert names(choice) == ["batch-worker-1", "batch-worker-2"]


def test_tags_said_in_words_select_and_a_singular_with_several_carriers_asks():
    dbs = [db("pg-instance-main1", score=0.19, app="main"), db("pg-instance-main2", score=0.18, app="main-reporting")]
    assert names(choose("stop the production postgres database for app main", ["rds_db_instance"], dbs)) == \
        ["pg-instance-main1"]
    both = [db("orders-db", score=0.2, app="orders"), db("orders-db-replica-1", score=0.19, app="orders")]
    assert choose("stop the orders app's database", ["rds_db_instance"], both).clarification is not None
    team = [ec2("batch-worker-1", 1, score=0.08, team="data"), ec2("batch-worker-2", 2, score=0.08, team="data"),
            ec2("web-1", 3, score=0.08, team="web")]
    assert names(choose("reboot team data's instances", ["ec2_instance"], team)) == ["batch-worker-1", "batch-worker-2"]


def test_the_engine_the_prompt_names_narrows_and_never_yields_another_engine():
    choice = choose("stop the production postgres database for app billing", ["rds_db_instance"],
                    [db("billing-mysql", score=0.09, engine="mysql", app="billing")])
    assert not choice.targets and "postgres" in choice.clarification.question


def test_everything_asks_when_the_operation_would_leave_other_types_out():
    resources = [ec2("bastion", 1, "333333333333", "us-west-2", 0.3), ec2("ci-runner", 2, "333333333333", "us-west-2", 0.3),
                 db("dev-scratch-pg", "333333333333", score=0.3)]
    choice = choose("terminate everything in dev", ["ec2_instance"], resources)
    assert not choice.targets and "3 resources of 2 types" in choice.clarification.question
    assert names(choose("terminate all instances in dev", ["ec2_instance"], resources)) == ["bastion", "ci-runner"]


def test_no_change_on_a_candidate_below_the_match_floor():
    lone = [ec2("ci-build-runner", 1, "333333333333", "us-west-2", score=MATCH_FLOOR / 2)]
    assert choose("terminate the thing in dev", ["ec2_instance"], lone).clarification is not None
    assert names(choose("describe the thing in dev", ["ec2_instance"], lone, read_only=True)) == ["ci-build-runner"]
    fine = [ec2("ci-build-runner", 1, "333333333333", "us-west-2", score=MATCH_FLOOR * 2)]
    assert names(choose("terminate the ci runner in dev", ["ec2_instance"], fine)) == ["ci-build-runner"]


def test_a_type_noun_that_contradicts_a_name_means_another_resource():
    """"the orders topic" is not the orders table: the name does not count as naming the table."""
    table = IdentifiedResource(resource_type="dynamodb_table", resource_id="orders", name="orders",
                               account_id="111111111111", region="us-west-2")
    parsed = request_prompt("delete the orders topic", CONTEXT, [table])
    assert find_mentions("delete the orders topic", [table], parsed) == []
    assert find_mentions("delete the orders table", [table], request_prompt("delete the orders table", CONTEXT, [table]))


# -- through the planner: the findings of issue 12 (finding 4) -------------------------------------------------

def _plan(planner, prompt, resources):
    from agent.protocol import PlanRequest

    return planner.plan(PlanRequest(prompt=prompt, identified_resources=resources, user_context=CONTEXT))


@pytest.mark.parametrize("prompt, resources", [
    ("Stop pg-instance-main1 --region us-east-1", [db("payments-aurora-instance-1", region="us-east-1", score=0.11)]),
    ("Stop pg-instance-main1 --region us-east-1",
     [db("pg-instance-main1", score=1.0), db("payments-aurora-instance-1", region="us-east-1", score=0.11)]),
    ("stop pg-instance-main1 in dev", [db("dev-scratch-pg", "333333333333", score=0.12)]),
    ("stop pg-instance-main1 in dev", [db("pg-instance-main1", score=1.0), db("dev-scratch-pg", "333333333333", score=0.12)]),
    ("delete the payments-events topic", [db("payments-db", score=0.3)]),
    ("delete the payments-events topic please", [db("payments-events-db", score=0.5)]),
])
def test_a_named_resource_is_never_swapped_for_another(planner, prompt, resources):
    plan = _plan(planner, prompt, resources)
    assert not any(s.mutating for s in plan.script.steps), plan.script.steps
    acted = {t for s in plan.script.steps for t in s.targets}
    assert not acted & {"payments-aurora-instance-1", "dev-scratch-pg", "payments-db", "payments-events-db"}


def test_a_name_abbreviated_without_a_number_keeps_its_first_and_last_word_and_two_fits_ask():
    def queue(name: str) -> IdentifiedResource:
        return IdentifiedResource(resource_type="sqs_queue", resource_id=f"https://sqs/111111111111/{name}", name=name,
                                  account_id="111111111111", region="us-west-2", match_score=0.3)

    dlq, other = queue("payments-queue-dlq"), queue("payments-queue")
    choice = choose_targets("purge the payments dlq", ["sqs_queue"], [other, dlq], [], find_hints(
        "purge the payments dlq", CONTEXT, [other, dlq]), "queue", parsed=request_prompt("purge the payments dlq",
                                                                                          CONTEXT, [other, dlq]))
    assert names(choice) == ["payments-queue-dlq"]
    two = [dlq, queue("payments-events-dlq")]
    choice = choose_targets("purge the payments dlq", ["sqs_queue"], two, [], find_hints("purge the payments dlq",
                            CONTEXT, two), "queue", parsed=request_prompt("purge the payments dlq", CONTEXT, two))
    assert not choice.targets and len(choice.clarification.candidates) == 2


def test_what_belongs_to_a_named_resource_of_another_type_is_what_is_meant():
    asg = IdentifiedResource(resource_type="autoscaling_group", resource_id="web-asg", name="web-asg",
                             account_id="111111111111", account_name="production", region="us-east-1", match_score=1.0)
    members = [ec2("web-asg", n, score=1.0).model_copy(update={"relations": {"autoscaling_group": ["web-asg"]}})
               for n in (1, 2)]
    others = [ec2("web-server-1", 3, score=0.4), ec2("web-server-2", 4, score=0.4)]
    choice = choose("stop the web-asg instances", ["ec2_instance"], [asg, *members, *others])
    assert sorted(t.resource_id for t in choice.targets) == ["i-0001", "i-0002"]
