"""Collectors against moto: one account, every resource type in us-east-1 (plus an S3 bucket in
eu-west-1), each collector run for real through an AccountSession and its documents checked field by
field. The estate is built once per module; tests that mutate it run last in their own fixture."""

from __future__ import annotations

import io
import json
import re
import zipfile

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from app.estate import collectors
from app.awsclient import AccountSession
from app.estate.collectors import COLLECTORS, GLOBAL_SERVICES
from agent.protocol import RESOURCE_TYPES

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
AMI = "ami-12c6146b"  # one of moto's built-in images

LAMBDA_ZIP = io.BytesIO()
with zipfile.ZipFile(LAMBDA_ZIP, "w") as _zip:
    _zip.writestr("handler.py", "def handler(event, context):\n    return event\n")

CFN_TEMPLATE = json.dumps({"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}})
# moto creates no resource for a WaitConditionHandle (all the stack needs) and says so.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..CloudFormation..WaitConditionHandle")


def _client(service: str, region: str = REGION):
    return boto3.client(service, region_name=region)


def _build_estate() -> dict:
    """Create one or more resources of every collected type; returns the ids the tests look for."""
    ids: dict = {}
    ec2 = _client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet_a = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    subnet_b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    ids.update(vpc=vpc, subnets=[subnet_a, subnet_b])

    # EC2: a tagged instance with an attached encrypted volume, and a terminated one that must not show.
    web = ec2.run_instances(ImageId=AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=subnet_a,
                            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                {"Key": "Name", "Value": "web-1"}, {"Key": "env", "Value": "production"}]}],
                            )["Instances"][0]
    gone = ec2.run_instances(ImageId=AMI, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[gone])
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=50, VolumeType="gp3", Encrypted=True,
                               TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "web-data"}]}])
    ec2.attach_volume(VolumeId=volume["VolumeId"], InstanceId=web["InstanceId"], Device="/dev/xvdf")
    ids.update(web=web["InstanceId"], web_ip=web["PrivateIpAddress"], terminated=gone, volume=volume["VolumeId"])

    # Auto Scaling: a group of two from a launch template, one process suspended.
    ec2.create_launch_template(LaunchTemplateName="web-lt", LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"})
    asg = _client("autoscaling")
    asg.create_auto_scaling_group(AutoScalingGroupName="web-asg", LaunchTemplate={"LaunchTemplateName": "web-lt"},
                                  MinSize=1, MaxSize=4, DesiredCapacity=2, VPCZoneIdentifier=f"{subnet_a},{subnet_b}",
                                  Tags=[{"Key": "team", "Value": "web", "PropagateAtLaunch": True}])
    asg.suspend_processes(AutoScalingGroupName="web-asg", ScalingProcesses=["AZRebalance"])

    # RDS: a primary with a read replica, and an Aurora cluster with one member.
    rds = _client("rds")
    rds.create_db_instance(DBInstanceIdentifier="orders-db", Engine="postgres", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="password123",
                           DeletionProtection=True, Tags=[{"Key": "env", "Value": "production"}])
    rds.create_db_instance_read_replica(DBInstanceIdentifier="orders-db-replica", SourceDBInstanceIdentifier="orders-db")
    rds.create_db_cluster(DBClusterIdentifier="payments-aurora", Engine="aurora-postgresql", MasterUsername="admin",
                          MasterUserPassword="password123", DeletionProtection=True,
                          ServerlessV2ScalingConfiguration={"MinCapacity": 0.5, "MaxCapacity": 16},
                          Tags=[{"Key": "app", "Value": "payments"}])
    rds.create_db_instance(DBInstanceIdentifier="payments-aurora-1", DBClusterIdentifier="payments-aurora",
                           Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")

    # S3: buckets in two regions; versioning enabled, suspended and never set.
    s3 = _client("s3")
    s3.create_bucket(Bucket="acme-prod-assets")
    s3.put_bucket_tagging(Bucket="acme-prod-assets", Tagging={"TagSet": [{"Key": "env", "Value": "prod"}]})
    s3.put_bucket_versioning(Bucket="acme-prod-assets", VersioningConfiguration={"Status": "Enabled"})
    s3_eu = _client("s3", "eu-west-1")
    s3_eu.create_bucket(Bucket="acme-eu-logs", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3_eu.put_bucket_versioning(Bucket="acme-eu-logs", VersioningConfiguration={"Status": "Enabled"})
    s3_eu.put_bucket_versioning(Bucket="acme-eu-logs", VersioningConfiguration={"Status": "Suspended"})
    s3.create_bucket(Bucket="acme-tmp")

    # IAM + Lambda.
    role = _client("iam").create_role(RoleName="lambda-exec", Path="/service/", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]
    fn = _client("lambda").create_function(FunctionName="image-resizer", Runtime="python3.11", Role=role["Arn"],
                                           Handler="handler.handler", Code={"ZipFile": LAMBDA_ZIP.getvalue()},
                                           MemorySize=512, Timeout=30, Tags={"team": "media"})
    ids.update(role_arn=role["Arn"], function_arn=fn["FunctionArn"])

    # DynamoDB.
    _client("dynamodb").create_table(
        TableName="user-sessions", BillingMode="PAY_PER_REQUEST", DeletionProtectionEnabled=True,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], Tags=[{"Key": "env", "Value": "production"}])

    # ELBv2: an ALB with a target group attached through a listener.
    sg = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=vpc)["GroupId"]
    elbv2 = _client("elbv2")
    lb = elbv2.create_load_balancer(Name="web-alb", Subnets=[subnet_a, subnet_b], SecurityGroups=[sg],
                                    Scheme="internet-facing", Type="application",
                                    Tags=[{"Key": "env", "Value": "production"}])["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name="web-tg", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance",
                                   Tags=[{"Key": "app", "Value": "web"}])["TargetGroups"][0]
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    ids.update(lb_arn=lb["LoadBalancerArn"], lb_dns=lb["DNSName"], tg_arn=tg["TargetGroupArn"])

    # ECS: a cluster with one service.
    ecs = _client("ecs")
    cluster = ecs.create_cluster(clusterName="prod-cluster", tags=[{"key": "env", "value": "production"}])["cluster"]
    ecs.register_task_definition(family="checkout", containerDefinitions=[
        {"name": "app", "image": "nginx", "memory": 256, "cpu": 128}])
    ecs.create_service(cluster="prod-cluster", serviceName="checkout", taskDefinition="checkout", desiredCount=3,
                       launchType="EC2", tags=[{"key": "team", "value": "payments"}])
    ids.update(cluster_arn=cluster["clusterArn"])

    # SQS: a queue with a dead-letter queue and a message waiting, and a FIFO queue.
    sqs = _client("sqs")
    dlq = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    orders = sqs.create_queue(QueueName="orders-queue", tags={"env": "production"}, Attributes={
        "VisibilityTimeout": "60", "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})})["QueueUrl"]
    sqs.send_message(QueueUrl=orders, MessageBody="hello")
    fifo = sqs.create_queue(QueueName="events.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    ids.update(orders_url=orders, dlq_url=dlq, dlq_arn=dlq_arn, fifo_url=fifo)

    # SNS: a topic with one SQS subscription.
    sns = _client("sns")
    topic = sns.create_topic(Name="ops-alerts", Tags=[{"Key": "team", "Value": "sre"}])["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=dlq_arn)
    ids.update(topic_arn=topic)

    # EKS.
    _client("eks").create_cluster(name="platform", version="1.29", roleArn=role["Arn"],
                                  resourcesVpcConfig={"subnetIds": [subnet_a, subnet_b]}, tags={"env": "staging"})

    # CloudFormation: a live stack and a deleted one.
    cfn = _client("cloudformation")
    cfn.create_stack(StackName="network", TemplateBody=CFN_TEMPLATE, Tags=[{"Key": "owner", "Value": "platform"}],
                     EnableTerminationProtection=True)
    cfn.create_stack(StackName="old-stack", TemplateBody=CFN_TEMPLATE)
    cfn.delete_stack(StackName="old-stack")
    return ids


@pytest.fixture(scope="module")
def aws():
    """moto for the whole module, with credentials and region from the environment only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        mp.setattr("app.credentials.load", lambda account: None)  # never read a real keyring
        with mock_aws():
            yield _build_estate()


def _account() -> AccountSession:
    return AccountSession(name="test", profile=None, regions=[REGION])


def _collect(account: AccountSession | None = None) -> dict[str, list]:
    """Every collector once, the way the sync engine calls them; keyed by resource_type."""
    account = account or _account()
    by_type: dict[str, list] = {}
    for service, fns in COLLECTORS.items():
        for fn in fns:
            for doc in fn(account, ACCOUNT_ID, account.regions[0]):
                assert doc.service == service
                by_type.setdefault(doc.resource_type, []).append(doc)
    return by_type


@pytest.fixture(scope="module")
def docs(aws):
    return _collect()


def _one(docs, resource_type: str, resource_id: str):
    found = [d for d in docs.get(resource_type, []) if d.resource_id == resource_id]
    assert len(found) == 1, f"{resource_type} {resource_id}: {[d.resource_id for d in docs.get(resource_type, [])]}"
    return found[0]


def test_registry_covers_every_resource_type(docs):
    assert set(COLLECTORS) == set(RESOURCE_TYPES.values())
    assert GLOBAL_SERVICES <= set(COLLECTORS)
    assert set(docs) == set(RESOURCE_TYPES), "every type was collected from the moto estate"
    for typed in docs.values():
        for doc in typed:
            assert doc.account_id == ACCOUNT_ID and doc.account_name == "test"
            assert doc.id == doc.arn and doc.text and len(doc.content_hash) == 64
            assert doc.to_identified().resource_type == doc.resource_type  # passes the wire model's validation


def test_ec2_instances_and_volumes(aws, docs):
    web = _one(docs, "ec2_instance", aws["web"])
    assert web.name == "web-1" and web.state == "running"
    assert web.arn == f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:instance/{aws['web']}"
    assert web.tags == {"Name": "web-1", "env": "production"}
    assert web.attributes["instance_type"] == "t3.micro"
    assert web.attributes["private_ip"] == aws["web_ip"]
    assert web.attributes["vpc_id"] == aws["vpc"] and web.attributes["az"] == "us-east-1a"
    assert aws["volume"] in web.relations["volumes"]
    assert "deletion_protection" not in web.constraints  # termination protection is not looked up
    assert "production prod" in web.text
    assert aws["terminated"] not in {d.resource_id for d in docs["ec2_instance"]}

    volume = _one(docs, "ec2_volume", aws["volume"])
    assert volume.name == "web-data" and volume.state == "in-use"
    assert volume.arn == f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:volume/{aws['volume']}"
    assert volume.attributes["size_gb"] == 50 and volume.attributes["volume_type"] == "gp3"
    assert volume.attributes["encrypted"] is True
    assert volume.relations["attached_to"] == [aws["web"]]


def test_autoscaling_group_and_its_instances(docs):
    group = _one(docs, "autoscaling_group", "web-asg")
    assert group.arn.startswith("arn:aws:autoscaling:") and group.tags == {"team": "web"}
    assert (group.attributes["min_size"], group.attributes["max_size"], group.attributes["desired_capacity"]) == (1, 4, 2)
    assert group.attributes["suspended_processes"] == ["AZRebalance"]
    assert group.attributes["launch_template"] == "web-lt"
    members = group.relations["members"]
    assert len(members) == 2
    for instance_id in members:  # the relation holds both ways
        assert _one(docs, "ec2_instance", instance_id).relations["autoscaling_group"] == ["web-asg"]


def test_rds_read_replica_both_directions(docs):
    primary = _one(docs, "rds_db_instance", "orders-db")
    replica = _one(docs, "rds_db_instance", "orders-db-replica")
    assert primary.relations["read_replicas"] == ["orders-db-replica"]
    assert primary.constraints["has_read_replicas"] is True and primary.constraints["deletion_protection"] is True
    assert primary.constraints["can_stop"] is False
    assert replica.relations["source_instance"] == ["orders-db"]
    assert replica.constraints["is_read_replica"] is True
    assert primary.attributes["engine"] == "postgres" and primary.tags == {"env": "production"}


def test_rds_cluster(docs):
    cluster = _one(docs, "rds_db_cluster", "payments-aurora")
    assert cluster.arn.endswith(":cluster:payments-aurora") and cluster.state == "available"
    assert cluster.attributes["engine"] == "aurora-postgresql" and cluster.tags == {"app": "payments"}
    assert cluster.relations["members"] == ["payments-aurora-1"]
    assert cluster.constraints["has_members"] is True and cluster.constraints["deletion_protection"] is True
    assert "multi_az" in cluster.attributes
    assert cluster.attributes["serverless_v2"] == {"min_acu": 0.5, "max_acu": 16} and "serverless" in cluster.text
    assert "engine_mode" not in cluster.attributes  # "provisioned" is the default, not a fact worth a word
    assert _one(docs, "rds_db_instance", "payments-aurora-1").attributes["cluster"] == "payments-aurora"


def test_s3_buckets_region_versioning_and_tags(docs):
    assets = _one(docs, "s3_bucket", "acme-prod-assets")
    assert assets.arn == "arn:aws:s3:::acme-prod-assets" and assets.name == "acme-prod-assets"
    assert assets.region == "us-east-1" and assets.tags == {"env": "prod"}
    assert assets.constraints == {"versioning": "Enabled"}
    logs = _one(docs, "s3_bucket", "acme-eu-logs")
    assert logs.region == "eu-west-1" and logs.constraints == {"versioning": "Suspended"}
    tmp = _one(docs, "s3_bucket", "acme-tmp")
    assert tmp.tags == {} and tmp.constraints == {"versioning": "Disabled"}  # NoSuchTagSet is "no tags"


def test_lambda_function(aws, docs):
    fn = _one(docs, "lambda_function", "image-resizer")
    assert fn.arn == aws["function_arn"] and fn.tags == {"team": "media"}
    assert fn.attributes["runtime"] == "python3.11"
    assert fn.attributes["memory_mb"] == 512 and fn.attributes["timeout_s"] == 30
    assert fn.attributes["last_modified"]


def test_a_lambda_lists_what_triggers_it(aws):
    """One ListEventSourceMappings a region; a qualified function ARN counts for the function."""
    lam, sqs = _client("lambda"), _client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName="orders-queue")["QueueUrl"],
                                         AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mapping = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=aws["function_arn"])["UUID"]
    try:
        functions = _by_id(collectors.lambda_functions(_account(), ACCOUNT_ID, REGION))
    finally:
        lam.delete_event_source_mapping(UUID=mapping)
    assert functions["image-resizer"].relations == {"event_sources": [queue_arn]}
    assert all(not f.relations for name, f in functions.items() if name != "image-resizer")
    assert collectors._event_sources(lam) == {}


def test_dynamodb_table(docs):
    table = _one(docs, "dynamodb_table", "user-sessions")
    assert table.state == "ACTIVE" and table.arn.endswith(":table/user-sessions")
    assert table.attributes["billing_mode"] == "PAY_PER_REQUEST" and table.attributes["item_count"] == 0
    assert table.constraints["deletion_protection"] is True and table.tags == {"env": "production"}


def test_ecs_cluster_and_service(aws, docs):
    cluster = _one(docs, "ecs_cluster", "prod-cluster")
    assert cluster.arn == aws["cluster_arn"] and cluster.state == "ACTIVE" and cluster.tags == {"env": "production"}
    service = _one(docs, "ecs_service", "checkout")
    assert service.arn.startswith("arn:aws:ecs:") and service.state == "ACTIVE"
    assert service.attributes["cluster_arn"] == aws["cluster_arn"]  # playbooks bind {target.attributes.cluster_arn}
    assert service.attributes["desired_count"] == 3 and service.attributes["launch_type"] == "EC2"
    assert "running_count" in service.attributes
    assert service.tags == {"team": "payments"} and service.relations["cluster"] == [aws["cluster_arn"]]


def test_elbv2_load_balancer_and_target_group(aws, docs):
    lb = _one(docs, "elbv2_load_balancer", aws["lb_arn"])
    assert lb.name == "web-alb" and lb.arn == aws["lb_arn"] and lb.state in ("active", "provisioning")
    assert lb.attributes["type"] == "application" and lb.attributes["scheme"] == "internet-facing"
    assert lb.attributes["dns_name"] == aws["lb_dns"] and lb.tags == {"env": "production"}
    tg = _one(docs, "elbv2_target_group", aws["tg_arn"])
    assert tg.name == "web-tg" and tg.tags == {"app": "web"}
    assert tg.relations["load_balancers"] == [aws["lb_arn"]]
    assert tg.attributes["port"] == 8080 and tg.attributes["protocol"] == "HTTP"


def test_sqs_queues(aws, docs):
    orders = _one(docs, "sqs_queue", aws["orders_url"])
    assert orders.name == "orders-queue" and orders.arn == f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:orders-queue"
    assert orders.tags == {"env": "production"}
    assert orders.attributes["approximate_messages"] == 1 and orders.attributes["visibility_timeout"] == 60
    assert orders.attributes["fifo"] is False
    assert orders.relations["dead_letter_queue"] == [aws["dlq_arn"]]
    fifo = _one(docs, "sqs_queue", aws["fifo_url"])
    assert fifo.name == "events.fifo" and fifo.attributes["fifo"] is True and fifo.tags == {}


def test_sns_topic(aws, docs):
    topic = _one(docs, "sns_topic", aws["topic_arn"])
    assert topic.name == "ops-alerts" and topic.arn == aws["topic_arn"] and topic.tags == {"team": "sre"}
    # moto never counts confirmed subscriptions (always "0"); the attribute is still read and parsed.
    assert topic.attributes["subscriptions_confirmed"] == 0


def test_eks_cluster(docs):
    cluster = _one(docs, "eks_cluster", "platform")
    assert cluster.arn.startswith("arn:aws:eks:") and cluster.state == "ACTIVE"
    assert cluster.attributes["version"] == "1.29" and cluster.tags == {"env": "staging"}


def test_cloudformation_stacks_skip_deleted(docs):
    stack = _one(docs, "cloudformation_stack", "network")
    assert stack.arn.startswith("arn:aws:cloudformation:") and stack.state == "CREATE_COMPLETE"
    assert stack.tags == {"owner": "platform"} and stack.constraints["deletion_protection"] is True
    assert "old-stack" not in {d.resource_id for d in docs["cloudformation_stack"]}


def test_iam_roles_are_global(aws, docs):
    role = _one(docs, "iam_role", "lambda-exec")
    assert role.arn == aws["role_arn"] and role.region == "us-east-1"
    assert role.attributes["path"] == "/service/" and role.attributes["created"]


def test_bucket_location_constraint_normalisation():
    assert collectors._bucket_region(None) == "us-east-1"
    assert collectors._bucket_region("") == "us-east-1"
    assert collectors._bucket_region("EU") == "eu-west-1"
    assert collectors._bucket_region("ap-south-1") == "ap-south-1"


def _fail(client, operation: str, code: str) -> None:
    """Make one operation of a (cached) client fail with ``code``, before the request is sent."""
    def raise_error(**_):
        raise ClientError({"Error": {"Code": code, "Message": code}}, operation)
    client.meta.events.register(f"before-call.{client.meta.service_model.endpoint_prefix}.{operation}", raise_error)


def test_s3_access_denied_on_tagging_keeps_the_bucket(aws):
    account = _account()
    for region in (REGION, "eu-west-1"):
        _fail(account.client("s3", region), "GetBucketTagging", "AccessDenied")
    buckets = {d.resource_id: d for d in collectors.s3_buckets(account, ACCOUNT_ID, REGION)}
    assert {"acme-prod-assets", "acme-eu-logs", "acme-tmp"} <= set(buckets)
    assert buckets["acme-prod-assets"].tags == {}
    assert buckets["acme-prod-assets"].constraints == {"versioning": "Enabled"}  # other details still read


def test_s3_location_denied_falls_back_to_head_bucket(aws):
    account = _account()
    _fail(account.client("s3", REGION), "GetBucketLocation", "AccessDenied")
    buckets = {d.resource_id: d for d in collectors.s3_buckets(account, ACCOUNT_ID, REGION)}
    assert buckets["acme-eu-logs"].region == "eu-west-1" and buckets["acme-prod-assets"].region == "us-east-1"


def test_s3_versioning_unreadable_is_unknown_not_disabled(aws):
    account = _account()
    for region in (REGION, "eu-west-1"):
        _fail(account.client("s3", region), "GetBucketVersioning", "AccessDenied")
    buckets = {d.resource_id: d for d in collectors.s3_buckets(account, ACCOUNT_ID, REGION)}
    assert "versioning" not in buckets["acme-prod-assets"].constraints


def test_throttling_on_a_detail_propagates(aws):
    """Tags decide `production`: a resource must not be stored with its tags silently dropped."""
    account = _account()
    _fail(account.client("lambda", REGION), "ListTags", "ThrottlingException")
    with pytest.raises(ClientError):
        collectors.lambda_functions(account, ACCOUNT_ID, REGION)


def test_content_hash_is_stable_and_follows_tags(aws, docs):
    """Runs last among the estate tests: it changes a tag."""
    before = {d.arn: d.content_hash for typed in docs.values() for d in typed}
    again = {d.arn: d.content_hash for typed in _collect().values() for d in typed}
    assert again == before

    _client("ec2").create_tags(Resources=[aws["volume"]], Tags=[{"Key": "env", "Value": "staging"}])
    _client("s3").put_bucket_tagging(Bucket="acme-prod-assets", Tagging={"TagSet": [{"Key": "env", "Value": "dev"}]})
    after = {d.arn: d.content_hash for typed in _collect().values() for d in typed}
    changed = {arn for arn in before if after.get(arn) != before[arn]}
    assert changed == {f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:volume/{aws['volume']}", "arn:aws:s3:::acme-prod-assets"}


# ------------------------------------------------------------------------------ incremental (known=)
# These run after the estate tests; each creates and removes its own resources, leaving the estate as it was.

class _Calls:
    """Every API call made through an account's (cached) clients: (operation, serialised request)."""

    def __init__(self, account: AccountSession, service: str, regions=(REGION,)):
        self.made: list[tuple[str, dict]] = []
        for region in regions:
            account.client(service, region).meta.events.register("before-call", self._record)

    def _record(self, model, params, **_):
        self.made.append((model.name, params))

    def of(self, operations) -> list[dict]:
        return [params for name, params in self.made if name in operations]

    def about(self, operations, name: str) -> list[dict]:
        """The calls of ``operations`` whose request names ``name`` (in its URL, query or body)."""
        return [params for params in self.of(operations) if name in json.dumps(params, default=str)]

    def clear(self) -> None:
        self.made.clear()


def _by_id(found) -> dict:
    return {d.resource_id: d for d in found}


def _hashes(found) -> dict:
    return {d.resource_id: d.content_hash for d in found}


def _make_queue(aws, name):
    return _client("sqs").create_queue(QueueName=name, tags={"team": "incr"})["QueueUrl"]


def _make_table(aws, name):
    _client("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], Tags=[{"Key": "team", "Value": "incr"}])
    return name


def _make_bucket(aws, name):
    _client("s3").create_bucket(Bucket=name)
    _client("s3").put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "team", "Value": "incr"}]})
    return name


def _make_function(aws, name):
    _client("lambda").create_function(FunctionName=name, Runtime="python3.11", Role=aws["role_arn"],
                                      Handler="handler.handler", Code={"ZipFile": LAMBDA_ZIP.getvalue()},
                                      Tags={"team": "incr"})
    return name


# collector, its listing operation, its per-resource detail operations, the regions its clients use,
# how to create one tagged resource (returns its resource_id) and how to delete it.
INCREMENTAL = {
    "sqs": (collectors.sqs_queues, "ListQueues", {"GetQueueAttributes", "ListQueueTags"}, (REGION,), _make_queue,
            lambda url: _client("sqs").delete_queue(QueueUrl=url)),
    "dynamodb": (collectors.dynamodb_tables, "ListTables", {"DescribeTable", "ListTagsOfResource"}, (REGION,),
                 _make_table, lambda name: _client("dynamodb").delete_table(TableName=name)),
    "s3": (collectors.s3_buckets, "ListBuckets", {"GetBucketLocation", "HeadBucket", "GetBucketTagging",
                                                  "GetBucketVersioning"}, (REGION, "eu-west-1"),
           _make_bucket, lambda name: _client("s3").delete_bucket(Bucket=name)),
    "lambda": (collectors.lambda_functions, "ListFunctions", {"ListTags"}, (REGION,), _make_function,
               lambda name: _client("lambda").delete_function(FunctionName=name)),
}


@pytest.mark.parametrize("service", sorted(INCREMENTAL))
def test_incremental_reuses_known_details_and_reads_new_ones(aws, service):
    collect, listing, details, regions, create, delete = INCREMENTAL[service]
    account = _account()
    first = collect(account, ACCOUNT_ID, REGION)
    assert first
    calls = _Calls(account, service, regions)

    # Nothing changed: the listing is made again, no resource is described, every document is the same.
    second = collect(account, ACCOUNT_ID, REGION, known=_by_id(first))
    assert calls.of({listing}) and calls.of(details) == []
    assert _hashes(second) == _hashes(first)

    # A new resource is read in full (its tags are there); the known ones still are not described.
    new_name = f"incr-new-{service}"
    new_id = create(aws, new_name)
    calls.clear()
    try:
        third = collect(account, ACCOUNT_ID, REGION, known=_by_id(second))
        detail_calls = calls.of(details)
        assert detail_calls, "the new resource was described"
        assert calls.about(details, new_name) == detail_calls, "only the new resource was described"
        assert _by_id(third)[new_id].tags == {"team": "incr"}
        assert {k: v for k, v in _hashes(third).items() if k != new_id} == _hashes(first)
    finally:
        delete(new_id)

    # A deleted resource is simply gone; the others are still reused.
    calls.clear()
    fourth = collect(account, ACCOUNT_ID, REGION, known=_by_id(third))
    assert new_id not in _by_id(fourth) and calls.of(details) == []
    assert _hashes(fourth) == _hashes(first)


def test_incremental_ec2_lists_states_and_tags_and_describes_only_what_changed(aws):
    account = _account()
    ec2 = _client("ec2")
    first = collectors.ec2_instances(account, ACCOUNT_ID, REGION)
    calls = _Calls(account, "ec2")

    # Nothing changed: states and tags are listed, no instance is described, the documents are the same.
    second = collectors.ec2_instances(account, ACCOUNT_ID, REGION, known=_by_id(first))
    assert {name for name, _ in calls.made} == {"DescribeInstanceStatus", "DescribeTags"}
    assert _hashes(second) == _hashes(first)

    # Retagged (name and Auto Scaling group come from tags): taken from the tag listing, still no describe.
    ec2.create_tags(Resources=[aws["web"]], Tags=[{"Key": "Name", "Value": "web-1-renamed"}])
    calls.clear()
    try:
        retagged = _by_id(collectors.ec2_instances(account, ACCOUNT_ID, REGION, known=_by_id(second)))
        assert retagged[aws["web"]].name == "web-1-renamed" and calls.of({"DescribeInstances"}) == []
        assert retagged[aws["web"]].content_hash == _one({"i": collectors.ec2_instances(account, ACCOUNT_ID, REGION)},
                                                         "i", aws["web"]).content_hash  # as a full read makes it
    finally:
        ec2.create_tags(Resources=[aws["web"]], Tags=[{"Key": "Name", "Value": "web-1"}])

    # A new instance and one whose state changed are described, by id, and nothing else; a terminated one is gone.
    new = ec2.run_instances(ImageId=AMI, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[aws["web"]])
    calls.clear()
    try:
        third = _by_id(collectors.ec2_instances(account, ACCOUNT_ID, REGION, known=_by_id(second)))
        described = calls.of({"DescribeInstances"})
        named = set(re.findall(r"i-[0-9a-f]{8,}", json.dumps(described, default=str)))
        assert len(described) == 1 and named == {new, aws["web"]}
        assert third[aws["web"]].state == "stopped" and third[new].attributes["instance_type"] == "t3.nano"
        assert {k: v for k, v in _hashes(third.values()).items() if k not in (new, aws["web"])} == \
            {k: v for k, v in _hashes(first).items() if k != aws["web"]}
    finally:
        ec2.start_instances(InstanceIds=[aws["web"]])
        ec2.terminate_instances(InstanceIds=[new])
    fourth = _by_id(collectors.ec2_instances(account, ACCOUNT_ID, REGION, known=third))
    assert new not in fourth and fourth[aws["web"]].state == "running"
    assert aws["terminated"] not in fourth


def test_incremental_ec2_falls_back_to_describing_when_its_listings_are_denied(aws):
    """A policy from before the incremental listing allows DescribeInstances only: the sync still works."""
    account = _account()
    first = collectors.ec2_instances(account, ACCOUNT_ID, REGION)
    calls = _Calls(account, "ec2")

    def deny(**_):
        raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "denied"}}, "DescribeTags")

    client = account.client("ec2", REGION)
    client.meta.events.register("before-call.ec2.DescribeTags", deny)
    try:
        again = collectors.ec2_instances(account, ACCOUNT_ID, REGION, known=_by_id(first))
    finally:
        client.meta.events.unregister("before-call.ec2.DescribeTags", deny)
    assert _hashes(again) == _hashes(first) and calls.of({"DescribeInstances"})


def test_every_collector_takes_known_and_returns_the_same_documents(aws):
    """The sync engine passes a scope's stored documents (every type of the service in one mapping)."""
    account = _account()
    for service, fns in COLLECTORS.items():
        first = [d for fn in fns for d in fn(account, ACCOUNT_ID, REGION)]
        known = _by_id(first)
        again = [d for fn in fns for d in fn(account, ACCOUNT_ID, REGION, known=known)]
        assert sorted((d.arn, d.content_hash) for d in again) == sorted((d.arn, d.content_hash) for d in first), service


def test_ecs_and_elbv2_skip_describes_and_tag_calls_for_known(aws):
    account = _account()
    for service in ("ecs", "elbv2"):
        first = [d for fn in COLLECTORS[service] for d in fn(account, ACCOUNT_ID, REGION)]
        calls = _Calls(account, service)
        for fn in COLLECTORS[service]:
            fn(account, ACCOUNT_ID, REGION, known=_by_id(first))
        made = {name for name, _ in calls.made}
        assert not made & {"DescribeClusters", "DescribeServices", "DescribeTags"}, made
        assert made & {"ListClusters", "DescribeLoadBalancers"}  # the listing itself is still made


def _stale(doc, **update):
    return doc.model_copy(update=update, deep=True).finalise()


def test_listing_fields_win_over_known_ones(aws, docs):
    account = _account()
    calls = _Calls(account, "lambda")
    fn = _one(docs, "lambda_function", "image-resizer")
    known = {fn.resource_id: _stale(fn, state="Failed", tags={"team": "from-known"},
                                    attributes={**fn.attributes, "memory_mb": 128})}
    got = _one({"f": collectors.lambda_functions(account, ACCOUNT_ID, REGION, known=known)}, "f", "image-resizer")
    assert got.tags == {"team": "from-known"} and calls.of({"ListTags"}) == []  # detail reused
    assert got.attributes["memory_mb"] == 512 and got.state == fn.state  # listing fields fresh

    # Modified since it was known (LastModified differs): its tags are read again.
    known = {fn.resource_id: _stale(fn, tags={"team": "from-known"},
                                    attributes={**fn.attributes, "last_modified": "2001-01-01T00:00:00.000+0000"})}
    got = _one({"f": collectors.lambda_functions(account, ACCOUNT_ID, REGION, known=known)}, "f", "image-resizer")
    assert got.tags == {"team": "media"} and len(calls.of({"ListTags"})) == 1

    # Collectors whose listing returns everything ignore known altogether.
    db = _one(docs, "rds_db_instance", "orders-db")
    known = {db.resource_id: _stale(db, state="stopped", tags={"env": "from-known"})}
    got = _one({"d": collectors.rds_instances(account, ACCOUNT_ID, REGION, known=known)}, "d", "orders-db")
    assert got.state == "available" and got.tags == {"env": "production"}

    lb = _one(docs, "elbv2_load_balancer", aws["lb_arn"])
    known = {lb.resource_id: _stale(lb, state="failed", tags={"env": "from-known"})}
    got = _one({"l": collectors.elbv2_load_balancers(account, ACCOUNT_ID, REGION, known=known)}, "l", aws["lb_arn"])
    assert got.state == lb.state and got.tags == {"env": "from-known"}


def test_a_recreated_bucket_is_read_again(aws, docs):
    """Same name, another creation time: a different bucket under a reused id; its details are read."""
    account = _account()
    calls = _Calls(account, "s3", (REGION, "eu-west-1"))
    tmp = _one(docs, "s3_bucket", "acme-tmp")
    known = {tmp.resource_id: _stale(tmp, tags={"env": "from-known"},
                                     attributes={"created": "2001-01-01T00:00:00+00:00"})}
    got = _one({"b": collectors.s3_buckets(account, ACCOUNT_ID, REGION, known=known)}, "b", "acme-tmp")
    assert got.tags == {} and got.content_hash == _one(_collect(), "s3_bucket", "acme-tmp").content_hash
    assert len(calls.about({"GetBucketTagging"}, "acme-tmp")) == 1


def test_reuse_matches_only_the_same_resource(docs):
    table = _one(docs, "dynamodb_table", "user-sessions")
    known = {"user-sessions": table}
    assert collectors._reuse(known, "dynamodb_table", "user-sessions") is table
    assert collectors._reuse(known, "dynamodb_table", "user-sessions", arn=table.arn) is table
    assert collectors._reuse(None, "dynamodb_table", "user-sessions") is None
    assert collectors._reuse(known, "dynamodb_table", "other-table") is None
    assert collectors._reuse(known, "sqs_queue", "user-sessions") is None  # same id, another type
    assert collectors._reuse(known, "dynamodb_table", "user-sessions", arn=table.arn + "-2") is None  # re-created
    assert collectors._reuse(known, "dynamodb_table", "user-sessions", billing_mode="PROVISIONED") is None
