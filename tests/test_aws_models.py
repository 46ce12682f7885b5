"""Rendering API calls as AWS CLI lines, coercion and validation through botocore."""

import pytest

from agent import aws_models


def test_scalar_list_boolean_and_structure_rendering():
    argv = aws_models.render_cli("ec2", "RebootInstances", {"InstanceIds": ["i-1", "i-2"]}, "eu-west-1", "dev")
    assert argv == ["aws", "ec2", "reboot-instances", "--instance-ids", "i-1", "i-2", "--region", "eu-west-1",
                    "--profile", "dev"]
    argv = aws_models.render_cli("rds", "RebootDBInstance", {"DBInstanceIdentifier": "db", "ForceFailover": True}, "us-east-1")
    assert "--force-failover" in argv
    argv = aws_models.render_cli("rds", "DeleteDBInstance", {"DBInstanceIdentifier": "db", "SkipFinalSnapshot": False,
                                                             "FinalDBSnapshotIdentifier": "f"}, "us-east-1")
    assert "--no-skip-final-snapshot" in argv and "--final-db-snapshot-identifier" in argv
    argv = aws_models.render_cli("s3", "PutBucketVersioning", {"Bucket": "b", "VersioningConfiguration": {"Status": "Enabled"}},
                                 "us-east-1")
    assert argv[:3] == ["aws", "s3api", "put-bucket-versioning"]
    assert argv[argv.index("--versioning-configuration") + 1] == '{"Status":"Enabled"}'


def test_streaming_output_takes_an_outfile():
    argv = aws_models.render_cli("lambda", "Invoke", {"FunctionName": "f", "Payload": "{}"}, "us-east-1")
    assert argv[argv.index("--region") - 1] == "response.json"


def test_command_line_quotes_for_the_shell():
    argv = aws_models.render_cli("sns", "Publish", {"TopicArn": "arn:aws:sns:us-east-1:111111111111:t",
                                                   "Message": "it's $(rm -rf /) done"}, "us-east-1")
    line = aws_models.command_line(argv)
    assert "'it'\"'\"'s $(rm -rf /) done'" in line


def test_coercion_and_validation():
    params = aws_models.coerce_parameters("autoscaling", "SetDesiredCapacity",
                                          {"AutoScalingGroupName": "g", "DesiredCapacity": "4", "HonorCooldown": "false"})
    assert params == {"AutoScalingGroupName": "g", "DesiredCapacity": 4, "HonorCooldown": False}
    assert aws_models.validate_parameters("autoscaling", "SetDesiredCapacity", params) == []
    assert aws_models.validate_parameters("autoscaling", "SetDesiredCapacity", {"DesiredCapacity": 4})
    with pytest.raises(ValueError):
        aws_models.coerce_parameters("autoscaling", "SetDesiredCapacity", {"Nope": 1})
    with pytest.raises(aws_models.UnknownOperation):
        aws_models.operation_model("rds", "StopEverything")
