"""A realistic multi-account AWS estate inside moto, for ``cloudops demo``, the tests and the benchmarks.

Why it exists: the sync engine, the lookup and the planner must be exercised against real AWS API
shapes (paginators, tags, ARNs, read replicas, the same name in two accounts) without an AWS
account. moto speaks those APIs over HTTP; this module

* starts moto on 127.0.0.1 (``start_moto``),
* writes an AWS config whose profiles assume a role into each demo account (``write_aws_config``):
  moto answers ``sts:AssumeRole`` into ``arn:aws:iam::<id>:role/...`` with keys that act inside
  account ``<id>``, so every account is reached exactly like a real one, through a profile,
* fills the accounts with a small hand-written estate, plus any number of cheap generated
  resources for benchmarks (``build_estate``).

moto keeps its state per *process* (every ThreadedMotoServer in one process shares it), and the
hand-written estate is created, not upserted: build on a fresh server, or after ``reset_moto``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
import logging
import random
import time
import urllib.request
from urllib.parse import urlparse
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

SOURCE_PROFILE = "cloudops-demo-source"
DEMO_ROLE = "cloudops-demo"
# One of moto's built-in AMIs (moto accepts any id, but a known one describes like a real image).
DEMO_AMI = "ami-03cf127a"
# Static keys for the source profile: moto accepts anything; these are never real credentials.
_TEST_KEYS = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32)


@dataclass(frozen=True)
class DemoAccount:
    """One simulated account: its config-file profile assumes ``cloudops-demo`` in ``account_id``."""

    name: str
    account_id: str
    profile: str
    regions: list[str]


DEMO_ACCOUNTS = [
    DemoAccount("production", "111111111111", "prod", ["us-west-2", "us-east-1"]),
    DemoAccount("staging", "222222222222", "staging", ["us-west-2", "us-east-1"]),
    DemoAccount("dev", "333333333333", "dev", ["us-west-2", "us-east-1"]),
]


@dataclass
class EstateSummary:
    """What ``build_estate`` created, as the sync collectors will see it.

    ``counts`` is keyed by (account name, region, resource_type), with the collectors' resource types
    and regions: an S3 bucket counts in its location, an IAM role in ``us-east-1``, and implicit
    resources are included (each EC2 instance's root EBS volume, the instances an ASG launches), so
    a full sync of the estate should find exactly ``total`` documents.
    """

    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def by_type(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (_, _, rtype), n in self.counts.items():
            out[rtype] += n
        return dict(sorted(out.items()))

    def by_scope(self) -> dict[tuple[str, str], int]:
        out: Counter[tuple[str, str]] = Counter()
        for (account, region, _), n in self.counts.items():
            out[(account, region)] += n
        return dict(sorted(out.items()))

    def scope(self, account: str, region: str) -> dict[str, int]:
        return {t: n for (a, r, t), n in sorted(self.counts.items()) if a == account and r == region}

    def table(self) -> str:
        """A plain-text breakdown for the CLI and benchmark logs."""
        lines = [f"{a:<12} {r:<10} {n:>6}" for (a, r), n in self.by_scope().items()]
        lines += [f"  {t:<24} {n:>6}" for t, n in self.by_type().items()]
        lines.append(f"total {self.total} resources in {self.seconds:.1f}s")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ moto

def start_moto(port: int = 0) -> tuple[ThreadedMotoServer, str]:
    """Start moto in this process on 127.0.0.1 (never 0.0.0.0: it accepts any credentials).

    ``port=0`` picks a free port. Returns the server (call ``stop()``) and its endpoint URL.
    Werkzeug's per-request log lines are silenced: a benchmark makes thousands of requests.
    """
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


def reset_moto(endpoint_url: str) -> None:
    """Forget every resource in every account (moto's ``POST /moto-api/reset``)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    opener.open(urllib.request.Request(endpoint_url.rstrip("/") + "/moto-api/reset", method="POST"), timeout=30)


def write_aws_config(directory: Path, accounts: list[DemoAccount], endpoint_url: str) -> dict[str, str]:
    """Write ``aws_config`` and ``aws_credentials`` into ``directory``; return the env vars to set.

    A source profile holds static test keys; each account's profile assumes ``cloudops-demo`` in
    that account from it, which is the shape of a real multi-account setup, so the client's code
    paths (profiles, role assumption, per-account sessions) run unchanged against moto. Each profile
    also carries ``endpoint_url`` so the files work on their own (e.g. with the AWS CLI).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    default_region = accounts[0].regions[0] if accounts and accounts[0].regions else "us-east-1"
    config = [f"[profile {SOURCE_PROFILE}]", f"region = {default_region}", f"endpoint_url = {endpoint_url}", ""]
    for account in accounts:
        config += [
            f"[profile {account.profile}]",
            f"role_arn = arn:aws:iam::{account.account_id}:role/{DEMO_ROLE}",
            f"source_profile = {SOURCE_PROFILE}",
            # A session name of this moto's own: the AWS CLI caches assumed-role keys by role and session name
            # (~/.aws/cli/cache), and keys from an earlier moto would act in moto's default account here.
            f"role_session_name = cloudops-demo-{account.profile}-{urlparse(endpoint_url).port}",
            f"region = {account.regions[0] if account.regions else default_region}",
            f"endpoint_url = {endpoint_url}",
            "",
        ]
    config_file, credentials_file = directory / "aws_config", directory / "aws_credentials"
    config_file.write_text("\n".join(config), encoding="utf-8")
    credentials_file.write_text(
        f"[{SOURCE_PROFILE}]\naws_access_key_id = {_TEST_KEYS[0]}\naws_secret_access_key = {_TEST_KEYS[1]}\n",
        encoding="utf-8")
    credentials_file.chmod(0o600)
    return {
        "AWS_CONFIG_FILE": str(config_file),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials_file),
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": default_region,
    }


# ------------------------------------------------------------------------------------ the builder

def _lambda_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return {'ok': True}\n")
    return buf.getvalue()


_ZIP = _lambda_zip()
_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com", "ecs-tasks.amazonaws.com",
                                                  "eks.amazonaws.com", "ec2.amazonaws.com"]},
     "Action": "sts:AssumeRole"}]})


def _kv(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in tags.items()]


class _Scope:
    """Creates resources in one account x region through that account's profile, and counts them.

    Each scope owns its boto3 session (sessions are not thread-safe; one per worker thread is).
    Counts use the collectors' regions: a bucket counts in its location, an IAM role in us-east-1.
    """

    def __init__(self, account: DemoAccount, region: str):
        self.account, self.region = account, region
        self.primary = region == account.regions[0]
        self.env = account.name
        self.session = boto3.Session(profile_name=account.profile, region_name=region)
        self._clients: dict[str, object] = {}
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.vpc_id = ""
        self.subnets: list[str] = []
        self.security_group = ""
        self._db_subnet_group_name = ""

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region, config=_CLIENT_CONFIG)
        return self._clients[service]

    def count(self, resource_type: str, n: int = 1, region: str | None = None) -> None:
        self.counts[(self.account.name, region or self.region, resource_type)] += n

    def tags(self, **extra: str) -> dict[str, str]:
        return {"env": self.env, **extra}

    def role_arn(self, name: str) -> str:
        return f"arn:aws:iam::{self.account.account_id}:role/{name}"

    # --- networking (not collected, but ELBv2, EKS and placement need it)

    def network(self, cidr: str) -> None:
        ec2 = self.client("ec2")
        self.vpc_id = ec2.create_vpc(CidrBlock=cidr, TagSpecifications=[{
            "ResourceType": "vpc", "Tags": _kv({"Name": f"{self.env}-vpc", **self.tags()})}])["Vpc"]["VpcId"]
        base = cidr.rsplit(".", 2)[0]  # "10.10.0.0/16" -> "10.10"
        self.subnets = [ec2.create_subnet(VpcId=self.vpc_id, CidrBlock=f"{base}.{i + 1}.0/24",
                                          AvailabilityZone=f"{self.region}{az}")["Subnet"]["SubnetId"]
                        for i, az in enumerate("ab")]
        self.security_group = ec2.create_security_group(
            GroupName=f"{self.env}-web", Description="web tier", VpcId=self.vpc_id)["GroupId"]

    # --- IAM and S3 (global)

    def role(self, name: str, description: str = "", **tags: str) -> str:
        self.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=_TRUST, Description=description,
                                       Tags=_kv(self.tags(**tags)))
        self.count("iam_role", region="us-east-1")
        return self.role_arn(name)

    def bucket(self, name: str, versioning: bool = False, **tags: str) -> None:
        """A bucket located in this scope's region (us-east-1 takes no LocationConstraint)."""
        s3, region = self.client("s3"), self.region
        kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=name, **kwargs)
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _kv(self.tags(**tags))})
        if versioning:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        self.count("s3_bucket", region=region)

    # --- compute

    def instances(self, names: list[str], instance_type: str, stopped: bool = False, subnet: int | None = None,
                  **tags: str) -> list[str]:
        """One RunInstances call for all ``names`` (shared tags), then a Name tag per instance."""
        if not names:
            return []
        ec2 = self.client("ec2")
        kwargs = {"SubnetId": self.subnets[subnet]} if subnet is not None and self.subnets else {}
        shared = self.tags(**tags)
        if len(names) == 1:
            shared = {"Name": names[0], **shared}
        reply = ec2.run_instances(ImageId=DEMO_AMI, InstanceType=instance_type, MinCount=len(names),
                                  MaxCount=len(names), TagSpecifications=[
                                      {"ResourceType": "instance", "Tags": _kv(shared)},
                                      {"ResourceType": "volume", "Tags": _kv(shared)}], **kwargs)
        ids = [i["InstanceId"] for i in reply["Instances"]]
        if len(names) > 1:
            for instance_id, name in zip(ids, names):
                ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "Name", "Value": name}])
        if stopped:
            ec2.stop_instances(InstanceIds=ids)
        self.count("ec2_instance", len(ids))
        self.count("ec2_volume", len(ids))  # moto, like AWS, gives every instance an EBS root volume
        return ids

    def volume(self, name: str, size: int, attach_to: str | None = None, az: str = "a", **tags: str) -> None:
        ec2 = self.client("ec2")
        vol = ec2.create_volume(AvailabilityZone=f"{self.region}{az}", Size=size, VolumeType="gp3",
                                TagSpecifications=[{"ResourceType": "volume",
                                                    "Tags": _kv({"Name": name, **self.tags(**tags)})}])
        if attach_to:
            ec2.attach_volume(Device="/dev/sdf", InstanceId=attach_to, VolumeId=vol["VolumeId"])
        self.count("ec2_volume")

    def asg(self, name: str, instance_type: str, desired: int, max_size: int, target_groups: tuple[str, ...] = (),
            **tags: str) -> None:
        """An ASG from a launch template; moto launches ``desired`` instances (and their root volumes)."""
        self.client("ec2").create_launch_template(LaunchTemplateName=f"{name}-lt", LaunchTemplateData={
            "ImageId": DEMO_AMI, "InstanceType": instance_type})
        self.client("autoscaling").create_auto_scaling_group(
            AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": f"{name}-lt", "Version": "$Latest"},
            MinSize=min(desired, 1), MaxSize=max_size, DesiredCapacity=desired,
            VPCZoneIdentifier=",".join(self.subnets), TargetGroupARNs=list(target_groups),
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True, "ResourceId": name,
                   "ResourceType": "auto-scaling-group"} for k, v in {"Name": name, **self.tags(**tags)}.items()])
        self.count("autoscaling_group")
        self.count("ec2_instance", desired)
        self.count("ec2_volume", desired)

    def alb(self, name: str, target_group: str, targets: list[str], **tags: str) -> str:
        """An internet-facing ALB with an HTTP listener forwarding to ``target_group``; returns its ARN."""
        elb = self.client("elbv2")
        lb = elb.create_load_balancer(Name=name, Subnets=self.subnets, SecurityGroups=[self.security_group],
                                      Scheme="internet-facing", Type="application",
                                      Tags=_kv(self.tags(**tags)))["LoadBalancers"][0]["LoadBalancerArn"]
        tg = elb.create_target_group(Name=target_group, Protocol="HTTP", Port=80, VpcId=self.vpc_id,
                                     TargetType="instance", HealthCheckPath="/healthz",
                                     Tags=_kv(self.tags(**tags)))["TargetGroups"][0]["TargetGroupArn"]
        elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
        if targets:
            elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": t, "Port": 80} for t in targets])
        self.count("elbv2_load_balancer")
        self.count("elbv2_target_group")
        return tg

    def ecs(self, cluster: str, services: dict[str, int], **tags: str) -> None:
        """A cluster and its services (``{name: desired count}``), each with its own task definition."""
        ecs = self.client("ecs")
        ecs.create_cluster(clusterName=cluster, tags=_kv(self.tags(**tags), "key", "value"))
        self.count("ecs_cluster")
        for service, desired in services.items():
            ecs.register_task_definition(family=service, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                                         cpu="256", memory="512", containerDefinitions=[{
                                             "name": service, "image": f"acme/{service}:1.4.2", "essential": True,
                                             "portMappings": [{"containerPort": 8080}]}])
            ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=service, desiredCount=desired,
                               launchType="FARGATE", tags=_kv(self.tags(**tags), "key", "value"),
                               networkConfiguration={"awsvpcConfiguration": {
                                   "subnets": self.subnets, "securityGroups": [self.security_group]}})
            self.count("ecs_service")

    def eks(self, name: str, role_arn: str, version: str = "1.29", **tags: str) -> None:
        self.client("eks").create_cluster(name=name, version=version, roleArn=role_arn,
                                          resourcesVpcConfig={"subnetIds": self.subnets}, tags=self.tags(**tags))
        self.count("eks_cluster")

    def function(self, name: str, role_arn: str, runtime: str = "python3.12", memory: int = 256,
                 **tags: str) -> None:
        """A Lambda function (the zip is a stub: nothing here is ever invoked)."""
        self.client("lambda").create_function(
            FunctionName=name, Runtime=runtime, Role=role_arn, Handler="index.handler", Code={"ZipFile": _ZIP},
            MemorySize=memory, Timeout=30, Description=f"{name} ({self.env})", Tags=self.tags(**tags))
        self.count("lambda_function")

    # --- databases

    def db(self, name: str, engine: str, version: str, instance_class: str, storage: int = 100,
           multi_az: bool = False, protected: bool = False, stopped: bool = False,
           replicas: dict[str, str] | None = None, **tags: str) -> None:
        """An RDS instance, optionally stopped, with read replicas ``{name: instance class}``."""
        rds = self.client("rds")
        rds.create_db_instance(DBInstanceIdentifier=name, Engine=engine, EngineVersion=version,
                               DBInstanceClass=instance_class, AllocatedStorage=storage, MultiAZ=multi_az,
                               StorageType="gp3", MasterUsername="dbadmin", MasterUserPassword="not-a-secret-1",
                               DeletionProtection=protected, BackupRetentionPeriod=7,
                               DBSubnetGroupName=self._db_subnet_group(), Tags=_kv(self.tags(**tags)))
        self.count("rds_db_instance")
        for replica, replica_class in (replicas or {}).items():
            rds.create_db_instance_read_replica(DBInstanceIdentifier=replica, SourceDBInstanceIdentifier=name,
                                                DBInstanceClass=replica_class, Tags=_kv(self.tags(**tags)))
            self.count("rds_db_instance")
        if stopped:
            rds.stop_db_instance(DBInstanceIdentifier=name)

    def aurora(self, cluster: str, engine: str, version: str, instances: dict[str, str], **tags: str) -> None:
        """An Aurora cluster and its member instances ``{name: instance class}``."""
        rds = self.client("rds")
        rds.create_db_cluster(DBClusterIdentifier=cluster, Engine=engine, EngineVersion=version,
                              MasterUsername="dbadmin", MasterUserPassword="not-a-secret-1",
                              DBSubnetGroupName=self._db_subnet_group(), Tags=_kv(self.tags(**tags)))
        self.count("rds_db_cluster")
        for name, instance_class in instances.items():
            rds.create_db_instance(DBInstanceIdentifier=name, DBClusterIdentifier=cluster, Engine=engine,
                                   DBInstanceClass=instance_class, Tags=_kv(self.tags(**tags)))
            self.count("rds_db_instance")

    def _db_subnet_group(self) -> str:
        if not self._db_subnet_group_name:
            self._db_subnet_group_name = f"{self.env}-db"
            self.client("rds").create_db_subnet_group(DBSubnetGroupName=self._db_subnet_group_name,
                                                      DBSubnetGroupDescription="databases", SubnetIds=self.subnets)
        return self._db_subnet_group_name

    def table(self, name: str, key: str = "id", **tags: str) -> None:
        self.client("dynamodb").create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}], Tags=_kv(self.tags(**tags)))
        self.count("dynamodb_table")

    # --- messaging and stacks

    def queue(self, name: str, dlq: bool = False, **tags: str) -> None:
        """An SQS queue; with ``dlq`` also ``<name>-dlq`` and a redrive policy pointing at it."""
        sqs = self.client("sqs")
        attributes = {"VisibilityTimeout": "60"}
        if dlq:
            dlq_url = sqs.create_queue(QueueName=f"{name}-dlq", tags=self.tags(**tags))["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
            self.count("sqs_queue")
        sqs.create_queue(QueueName=name, Attributes=attributes, tags=self.tags(**tags))
        self.count("sqs_queue")

    def topic(self, name: str, **tags: str) -> None:
        self.client("sns").create_topic(Name=name, Tags=_kv(self.tags(**tags)))
        self.count("sns_topic")

    def stack(self, name: str, cidr: str, **tags: str) -> None:
        """A CloudFormation stack owning a VPC (a type the sync does not collect, so counts stay exact)."""
        template = {"AWSTemplateFormatVersion": "2010-09-09", "Description": f"{name} ({self.env})",
                    "Parameters": {"Cidr": {"Type": "String", "Default": cidr}},
                    "Resources": {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": {"Ref": "Cidr"}}}},
                    "Outputs": {"VpcId": {"Value": {"Ref": "Vpc"}}}}
        self.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template),
                                                   Tags=_kv(self.tags(**tags)))
        self.count("cloudformation_stack")


# ------------------------------------------------------------------------ the hand-written estate
# Layouts are written against an account's first ("primary", us-west-2 in DEMO_ACCOUNTS) and second
# region, so the same estate fits any pair of regions. Names repeat across accounts on purpose
# (orders-db, web-server-1, web-asg, api-service, bastion): lookups must cope with ambiguity.

def _production(s: _Scope) -> None:
    lambda_role = s.role_arn("lambda-exec-role")
    if s.primary:
        s.bucket("acme-prod-assets", app="web", team="web")
        s.bucket("acme-prod-db-backups", versioning=True, app="main", team="data")
        s.network("10.10.0.0/16")
        # The seed example: Multi-AZ postgres, no read replica; then its neighbours.
        s.db("pg-instance-main1", "postgres", "15.5", "db.r6g.xlarge", storage=500, multi_az=True, protected=True,
             app="main")
        s.db("pg-instance-main2", "postgres", "15.5", "db.r6g.large", storage=200, protected=True,
             app="main-reporting")
        s.db("orders-db", "postgres", "14.10", "db.m6g.2xlarge", storage=1000, multi_az=True, protected=True,
             replicas={"orders-db-replica-1": "db.m6g.xlarge"}, app="orders", team="commerce")
        s.db("billing-mysql", "mysql", "8.0.35", "db.r6g.large", storage=200, multi_az=True, app="billing",
             team="payments")
        web = s.instances(["web-server-1"], "m6i.large", subnet=0, app="web", team="web")
        web += s.instances(["web-server-2"], "m6i.large", subnet=1, app="web", team="web")
        s.instances(["web-server-3"], "m5.large", stopped=True, subnet=0, app="web", team="web")
        s.instances(["bastion"], "t3.micro", subnet=0, role="bastion", team="platform")
        s.volume("web-server-1-data", 100, attach_to=web[0], app="web", team="web")
        tg = s.alb("web-alb", "web-tg", web, app="web", team="web")
        s.asg("web-asg", "m6i.large", desired=2, max_size=6, target_groups=(tg,), app="web", team="web")
        s.ecs("prod-cluster", {"api-service": 3, "checkout-worker": 2}, app="api", team="commerce")
        s.function("image-resizer", lambda_role, memory=1024, app="media", team="web")
        s.function("nightly-report-generator", lambda_role, app="reports", team="data")
        s.function("orders-processor", lambda_role, app="orders", team="commerce")
        s.table("orders", "order_id", app="orders", team="commerce")
        s.table("sessions", "session_id", app="web", team="web")
        s.queue("orders-queue", app="orders", team="commerce")
        s.queue("payments-queue", dlq=True, app="payments", team="payments")
        s.topic("ops-alerts", team="platform")
        s.topic("order-events", app="orders", team="commerce")
        s.eks("platform-prod", s.role_arn("eks-cluster-role"), team="platform")
        s.stack("core-network", "10.200.0.0/16", team="platform")
    else:
        s.bucket("acme-prod-access-logs", team="platform")
        s.network("10.11.0.0/16")
        s.db("legacy-reports-db", "mysql", "5.7.44", "db.m5.large", stopped=True, app="reports", team="data")
        s.aurora("payments-aurora-cluster", "aurora-postgresql", "15.4",
                 {"payments-aurora-instance-1": "db.r6g.large"}, app="payments", team="payments")
        s.instances(["batch-worker-1", "batch-worker-2"], "r6i.xlarge", app="batch", team="data")
        s.function("orders-db-secret-rotator", lambda_role, app="orders", team="commerce")
        s.queue("image-resize-jobs", app="media", team="web")
        s.table("user-sessions", "user_id", app="web", team="web")


def _staging(s: _Scope) -> None:
    lambda_role = s.role_arn("lambda-exec-role")
    if s.primary:
        s.bucket("acme-staging-assets", app="web", team="web")
        s.network("10.20.0.0/16")
        s.db("orders-db", "postgres", "14.10", "db.t4g.large", app="orders", team="commerce")
        web = s.instances(["web-server-1"], "t3.medium", subnet=0, app="web", team="web")
        s.asg("web-asg", "t3.medium", desired=1, max_size=4, app="web", team="web")
        s.ecs("staging-cluster", {"api-service": 1}, app="api", team="commerce")
        s.function("orders-processor", lambda_role, app="orders", team="commerce")
        s.table("orders", "order_id", app="orders", team="commerce")
        s.queue("orders-queue", app="orders", team="commerce")
        s.volume("web-server-1-data", 50, attach_to=web[0], app="web", team="web")
    else:
        s.network("10.21.0.0/16")
        s.db("qa-mysql-01", "mysql", "8.0.35", "db.t4g.medium", stopped=True, app="qa", team="qa")
        s.instances(["jenkins-controller"], "m6i.xlarge", team="platform")
        s.eks("platform-staging", s.role_arn("eks-cluster-role"), team="platform")
        s.stack("web-app-staging", "10.210.0.0/16", app="web", team="web")
        s.topic("deploy-notifications", team="platform")
        s.queue("email-notifications", app="notifications", team="growth")
        s.function("image-resizer", lambda_role, app="media", team="web")


def _dev(s: _Scope) -> None:
    """Any account that is not production or staging gets this small, untidy estate."""
    if s.primary:
        s.bucket(f"acme-{s.account.profile}-tmp-uploads", owner="jdoe")
        s.network("10.30.0.0/16")
        s.db("dev-scratch-pg", "postgres", "16.1", "db.t4g.micro", storage=20, owner="jdoe")
        s.instances(["bastion"], "t3.nano", subnet=0, role="bastion", team="platform")
        s.instances(["ci-build-runner"], "c6i.2xlarge", stopped=True, team="platform")
        s.volume("orphan-data-vol", 20, owner="jdoe")
        s.function("nightly-report-generator", s.role_arn("lambda-exec-role"), app="reports", team="data")
        s.table("feature-flags", "flag", app="web", team="web")
        s.queue("orders-queue", app="orders", team="commerce")
    else:
        s.queue("experiments-queue", owner="jdoe")
        s.topic("dev-alerts", team="platform")


_LAYOUTS = {"production": _production, "staging": _staging}
_PLATFORM_ROLES = [  # (name, description, tags): every account has these
    ("lambda-exec-role", "Lambda execution", {"team": "platform"}),
    ("eks-cluster-role", "EKS control plane", {"team": "platform"}),
    (DEMO_ROLE, "Read-only inventory role assumed by CloudOps Agent", {"team": "platform"}),
]
_ROLES = {
    "production": _PLATFORM_ROLES + [
        ("ecs-task-execution-role", "ECS task execution", {"team": "platform"}),
        ("web-deploy-role", "CI deploys of the web tier", {"app": "web", "team": "web"}),
    ],
    "staging": _PLATFORM_ROLES + [("ecs-task-execution-role", "ECS task execution", {"team": "platform"})],
}


def _build_roles(account: DemoAccount) -> Counter:
    """IAM roles first: Lambda refuses a role that does not exist yet, in any region."""
    s = _Scope(account, account.regions[0])
    for name, description, tags in _ROLES.get(account.name, _PLATFORM_ROLES):
        s.role(name, description, **tags)
    return s.counts


# ---------------------------------------------------------------------- generated (benchmark) load

_APPS = ["billing", "checkout", "search", "catalog", "inventory", "payments", "shipping", "auth", "analytics",
         "reporting", "pricing", "ledger", "fraud", "media", "notifications", "recommendations"]
_TEAMS = ["commerce", "payments", "platform", "data", "web", "growth"]
_KINDS = {  # resource type -> (name suffixes, weight)
    "ec2_instance": (["worker", "api", "cron", "etl", "proxy"], 35),
    "sqs_queue": (["jobs", "events", "tasks", "retries"], 20),
    "sns_topic": (["alerts", "events", "notifications"], 15),
    "dynamodb_table": (["items", "state", "cache", "audit"], 15),
    "s3_bucket": (["archive", "exports", "uploads", "logs"], 15),
}


def _extras(s: _Scope, n: int, seed: int) -> None:
    """Exactly ``n`` more resources in this scope as the sync counts them, with deterministic names.

    Types are drawn by weight from ``_KINDS``; an EC2 instance uses two of the ``n`` (its root volume
    is a resource too). All the scope's instances come from one RunInstances call (then one CreateTags
    per Name); S3 buckets, being global, only come with the account's first region. Names end in a
    running number so they never clash with the hand-written estate; bucket names also carry the
    profile and seed, since they must be unique across accounts.
    """
    rng = random.Random(f"{seed}:{s.account.account_id}:{s.region}")
    kinds = [k for k in _KINDS if s.primary or k != "s3_bucket"]
    weights = [_KINDS[k][1] for k in kinds]
    plan: dict[str, list[tuple[str, str]]] = {k: [] for k in kinds}
    budget, i = n, 0
    while budget > 0:
        kind = rng.choices(kinds, weights=weights)[0]
        if kind == "ec2_instance" and budget < 2:
            kind = "sqs_queue"
        plan[kind].append((f"{rng.choice(_APPS)}-{rng.choice(_KINDS[kind][0])}-{i:05d}", rng.choice(_TEAMS)))
        budget -= 2 if kind == "ec2_instance" else 1
        i += 1
    tags = {"generated": f"seed-{seed}"}
    s.instances([name for name, _ in plan["ec2_instance"]], "t3.small", **tags)
    for name, team in plan["sqs_queue"]:
        s.queue(name, team=team, **tags)
    for name, team in plan["sns_topic"]:
        s.topic(name, team=team, **tags)
    for name, team in plan["dynamodb_table"]:
        s.table(name, team=team, **tags)
    for name, team in plan.get("s3_bucket", []):
        s.bucket(f"acme-{s.account.profile}-{name}-s{seed}"[:63].rstrip("-"), team=team, **tags)


# ------------------------------------------------------------------------------------- entry point

def _build_scope(account: DemoAccount, region: str, extra: int, seed: int) -> Counter:
    s = _Scope(account, region)
    _LAYOUTS.get(account.name, _dev)(s)
    if extra:
        _extras(s, extra, seed)
    return s.counts


def build_estate(accounts: list[DemoAccount] = DEMO_ACCOUNTS, *, extra_per_scope: int = 0,
                 seed: int = 7) -> EstateSummary:
    """Create the demo estate in moto through each account's profile; return what was created.

    Call after ``write_aws_config``'s env vars are set (the profiles are how accounts are reached).
    Each account's IAM roles come first; then all scopes (account x region) are built concurrently.
    ``extra_per_scope=N`` adds N generated resources per scope (``_extras``), for benchmarks.
    """
    started = time.perf_counter()
    accounts = [a for a in accounts if a.regions]
    counts: Counter[tuple[str, str, str]] = Counter()
    scopes = [(a, r) for a in accounts for r in a.regions]
    with ThreadPoolExecutor(max_workers=max(1, len(scopes))) as pool:
        for c in pool.map(_build_roles, accounts):
            counts.update(c)
        for c in pool.map(lambda scope: _build_scope(*scope, extra_per_scope, seed), scopes):
            counts.update(c)
    return EstateSummary(counts=dict(sorted(counts.items())), seconds=time.perf_counter() - started)


@contextmanager
def simulated_estate(accounts: list[DemoAccount] = DEMO_ACCOUNTS, *, extra_per_scope: int = 0
                     ) -> Iterator[tuple[str, EstateSummary]]:
    """moto on loopback with the demo estate in it, and this process's AWS environment pointed at it
    (profiles that assume a role into each account) until the block ends; then all of it is undone.

    The AWS config holding moto's throwaway keys lives in a temporary folder, never under
    ``CLOUDOPS_HOME``: no file there ever holds a key, not even a fake one.
    """
    server, endpoint = start_moto()
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="cloudops-demo-aws-") as aws_dir:
        try:
            reset_moto(endpoint)
            os.environ.update(write_aws_config(Path(aws_dir), accounts, endpoint))
            yield endpoint, build_estate(accounts, extra_per_scope=extra_per_scope)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            server.stop()


def demo_config(accounts: list[DemoAccount] = DEMO_ACCOUNTS):
    """The config.yaml that names the demo accounts (profiles, regions, ids)."""
    from app.config import AccountConfig, Config

    return Config(accounts=[AccountConfig(name=a.name, profile=a.profile, regions=a.regions, account_id=a.account_id)
                            for a in accounts])
