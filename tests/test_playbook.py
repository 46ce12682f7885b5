"""Every playbook loads, is checked against botocore's models, and a bad one is refused naming the
file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import aws_models
from agent.playbook import PlaybookError, load_playbook, load_playbooks, parse_playbook
from conftest import PLAYBOOKS

REQUIRED_OPERATIONS = {
    ("rds", "StopDBInstance"), ("rds", "StartDBInstance"), ("rds", "RebootDBInstance"), ("rds", "CreateDBSnapshot"),
    ("rds", "ModifyDBInstance"), ("rds", "DeleteDBInstance"), ("rds", "DescribeDBInstances"),
    ("rds", "FailoverDBCluster"),
    ("ec2", "StartInstances"), ("ec2", "StopInstances"), ("ec2", "RebootInstances"), ("ec2", "TerminateInstances"),
    ("ec2", "DescribeInstances"), ("ec2", "CreateImage"),
    ("s3", "ListObjectsV2"), ("s3", "DeleteBucket"), ("s3", "PutBucketVersioning"), ("s3", "PutPublicAccessBlock"),
    ("lambda", "Invoke"), ("lambda", "GetFunctionConfiguration"), ("lambda", "PutFunctionConcurrency"),
    ("dynamodb", "DescribeTable"), ("dynamodb", "CreateBackup"),
    ("sqs", "PurgeQueue"), ("sqs", "GetQueueAttributes"),
    ("autoscaling", "SetDesiredCapacity"), ("autoscaling", "SuspendProcesses"),
    ("ecs", "UpdateService"), ("elbv2", "DescribeTargetHealth"), ("sns", "Publish"),
}

ALL = load_playbooks(PLAYBOOKS)


def test_there_are_at_least_forty_playbooks_covering_the_required_operations():
    assert len(ALL) >= 40
    present = {(lp.playbook.step_service(s), s.operation) for lp in ALL for s in lp.playbook.steps}
    assert REQUIRED_OPERATIONS <= present, REQUIRED_OPERATIONS - present


@pytest.mark.parametrize("loaded", ALL, ids=lambda lp: lp.playbook.id)
def test_playbook_matches_botocore(loaded):
    pb = loaded.playbook
    assert pb.id == loaded.path.stem
    for step in pb.steps:
        service = pb.step_service(step)
        members = aws_models.input_members(service, step.operation)  # raises if the operation is unknown
        for required in aws_models.required_members(service, step.operation):
            assert required in step.parameters, f"{pb.id}: {step.operation} misses {required}"
        assert set(step.parameters) <= set(members)
        if pb.is_mutating(step):
            assert not pb.read_only
    assert len(pb.utterances) >= 3 and pb.impact.strip()


def test_playbook_ids_are_unique_and_read_only_flags_agree_with_verbs():
    ids = [lp.playbook.id for lp in ALL]
    assert len(ids) == len(set(ids))
    for lp in ALL:
        if lp.playbook.read_only:
            assert all(aws_models.is_read_only(s.operation) for s in lp.playbook.steps)


GOOD = (PLAYBOOKS / "aws_rds_stop_instance.yaml").read_text()


def _bad(tmp_path: Path, text: str, name: str = "aws_rds_stop_instance") -> PlaybookError:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    assert str(path) in str(info.value)
    return info.value


def test_unknown_operation_names_the_step_operation(tmp_path):
    err = _bad(tmp_path, GOOD.replace("operation: StopDBInstance", "operation: StopDBInstanceNow"))
    assert err.field == "steps[0:stop].operation" and "StopDBInstanceNow" in err.message


def test_unbound_required_member_is_refused(tmp_path):
    err = _bad(tmp_path, GOOD.replace('DBInstanceIdentifier: "{target.resource_id}"', "{}"))
    assert err.field == "steps[0:stop].parameters" and "DBInstanceIdentifier" in err.message


def test_unknown_member_is_refused(tmp_path):
    err = _bad(tmp_path, GOOD.replace('DBInstanceIdentifier: "{target.resource_id}"',
                                      'DBInstanceIdentifier: "{target.resource_id}"\n      Force: true'))
    assert err.field == "steps[0:stop].parameters.Force"


def test_unknown_field_and_missing_field_are_named(tmp_path):
    assert _bad(tmp_path, GOOD + "\nowner: me\n").field == "owner"
    assert _bad(tmp_path, GOOD.replace("read_only: false\n", "")).field == "read_only"


def test_wrong_types_are_named_with_their_path(tmp_path):
    err = _bad(tmp_path, GOOD.replace("level: low\n      reason: \"Multi-AZ", "level: severe\n      reason: \"Multi-AZ"))
    assert err.field == "risk.rules[0].level"


def test_id_must_match_the_file_name(tmp_path):
    assert _bad(tmp_path, GOOD, name="aws_rds_stop_other").field == "id"


def test_unknown_fact_and_placeholder_are_refused(tmp_path):
    assert "unknown fact" in _bad(tmp_path, GOOD.replace("{multi_az: true}", "{multi_zone: true}")).message
    err = _bad(tmp_path, GOOD.replace("{target.resource_id}", "{target.password}"))
    assert err.field == "steps[0:stop].parameters.DBInstanceIdentifier"
    err = _bad(tmp_path, GOOD.replace("{target.resource_id}", "{param.nothing}"))
    assert "no declared parameter" in err.message


def test_read_only_playbook_cannot_call_a_mutating_operation(tmp_path):
    err = _bad(tmp_path, GOOD.replace("read_only: false", "read_only: true"))
    assert err.field in ("steps[0:stop].mutating", "read_only")


def test_yaml_bombs_anchors_and_aliases_are_refused(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n"
    err = _bad(tmp_path, bomb)
    assert "anchors" in err.message or "aliases" in err.message


def test_python_tags_and_garbage_are_refused(tmp_path):
    assert _bad(tmp_path, "!!python/object/apply:os.system ['true']\n").field.startswith("line")
    assert _bad(tmp_path, "just a string\n").field == "(root)"
    assert _bad(tmp_path, "id: [unclosed\n").field.startswith("line")


def test_oversized_and_binary_files_are_refused(tmp_path):
    assert "larger than" in _bad(tmp_path, "# " + "x" * 70000 + "\n" + GOOD).message
    path = tmp_path / "aws_x_bin.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(PlaybookError, match="UTF-8"):
        load_playbook(path)


def test_a_directory_with_one_bad_file_names_that_file(tmp_path):
    (tmp_path / "aws_rds_stop_instance.yaml").write_text(GOOD)
    (tmp_path / "aws_broken_one.yaml").write_text(GOOD.replace("aws_rds_stop_instance", "aws_broken_one")
                                                  .replace("service: rds", "service: rdss"))
    with pytest.raises(PlaybookError) as info:
        load_playbooks(tmp_path)
    assert "aws_broken_one.yaml" in str(info.value) and info.value.field == "service"


def test_parse_playbook_accepts_the_shipped_text():
    assert parse_playbook(GOOD, Path("aws_rds_stop_instance.yaml")).main_operation == "StopDBInstance"


def test_false_cues_belong_to_booleans_only(tmp_path):
    """A string parameter with words for false would be silently ignored: refused, naming the field."""
    spec = "parameters:\n  - {name: label, kind: string, description: d, required: false, false_cues: [no label]}\n"
    err = _bad(tmp_path, GOOD.replace("steps:", spec + "steps:", 1))
    assert err.field.startswith("parameters") and "false_cues" in err.message
