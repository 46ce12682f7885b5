"""Collectors: list one service's resources in one account and region and normalise them.

A collector is ``fn(account, account_id, region, *, known=None) -> list[ResourceDocument]``; it uses
paginators wherever the API pages, and lets botocore errors propagate: the sync engine records them per
scope (account x region x service) and keeps that scope's previous documents.

``known`` (the scope's stored documents, keyed by ``resource_id``) makes an incremental sync cheap: the
listing is always made, but a listed resource that is already known reuses what its per-resource
*detail* calls (tags, versioning, describe, attributes) found last time instead of making them again.
Whatever the listing itself returns (state, sizes, configuration) is always taken fresh from it. A known
resource missing from the listing is simply not returned; a new one is read in full. EC2 instances list
incrementally by state and tags (see ``ec2_instances``). The other collectors whose listing already returns
everything (EC2 volumes, RDS, Auto Scaling, CloudFormation, IAM) ignore ``known``.

Global services (S3, IAM) are collected once per account, from its first region; each document
carries its real region (a bucket's location; ``us-east-1`` for IAM).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from app.awsclient import AccountSession, error_code
from app.estate.documents import ResourceDocument, make_document, tags_from_list
from app.estate.tagbook import TagBooks, tags_of

Known = Mapping[str, ResourceDocument]
GLOBAL_SERVICES = frozenset({"s3", "iam"})


# Error codes that mean "this detail does not exist" (an empty answer) or "we may not read it" (an
# unknown answer); either way the resource itself is kept. Any other error (throttling that outlived
# the retries, an outage) propagates, so the sync engine keeps the scope's previous documents rather
# than storing a resource whose tags silently vanished (tags decide the `production` fact).
_ABSENT = frozenset({"NoSuchTagSet", "NoSuchTagSetError", "ResourceNotFoundException", "NotFound"})
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
                     "AllAccessDisabled", "UnauthorizedException"})
# Codes that mean the listed resource disappeared before it could be described: skip it.
_GONE = frozenset({"NoSuchBucket", "404", "ResourceNotFoundException", "NotFound", "ClusterNotFoundException",
                   "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


class Collector(Protocol):
    def __call__(self, account: AccountSession, account_id: str, region: str, *,
                 known: Known | None = None) -> list[ResourceDocument]: ...


def _reuse(known: Known | None, resource_type: str, resource_id: str, arn: str | None = None,
           **attributes: Any) -> ResourceDocument | None:
    """The known document of a listed resource, whose detail-derived fields may be reused; None when it
    must be read in full: it is new, or the id now names another resource (another type in the same
    scope, or one deleted and re-created: its ``arn`` or a listed attribute such as the creation time
    differs from the known document's)."""
    doc = known.get(resource_id) if known else None
    if doc is None or doc.resource_type != resource_type or (arn is not None and doc.arn != arn):
        return None
    if any(doc.attributes.get(key) != value for key, value in attributes.items()):
        return None
    return doc


def _reused(account: AccountSession, doc: ResourceDocument) -> ResourceDocument:
    """A known document returned as is (a copy, under the account's current name)."""
    return doc.model_copy(update={"account_name": account.name}, deep=True).finalise()


def _pages(client, operation: str, key: str, **kwargs) -> Iterator[Any]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def _detail(call: Callable[..., Any], default: Any = None, **kwargs) -> Any:
    """A per-resource detail call (tags, versioning, ...): ``default`` when absent or not readable."""
    try:
        return call(**kwargs)
    except ClientError as err:
        if error_code(err) in _ABSENT or error_code(err) in _DENIED:
            return default
        raise


def _describe(call: Callable[..., Any], **kwargs) -> Any:
    """Describe one listed resource; None when it was deleted between the list and the describe."""
    try:
        return call(**kwargs)
    except ClientError as err:
        if error_code(err) in _GONE:
            return None
        raise


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _json(text: str | None) -> dict | None:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _partition(account: AccountSession, region: str) -> str:
    try:
        return account.session().get_partition_for_region(region)
    except Exception:  # noqa: BLE001 - an unknown region is still in the commercial partition
        return "aws"


def _books(account: AccountSession) -> TagBooks | None:
    """The run's tag books of this account (see app.estate.tagbook); None outside a sync run (tests, refreshes
    of one resource), where every resource is asked for its own tags."""
    return getattr(account, "tag_books", None)


def _doc(account: AccountSession, account_id: str, region: str, **fields: Any) -> ResourceDocument:
    return make_document(account_id=account_id, account_name=account.name, region=region, **fields)


# ----------------------------------------------------------------------------------------------- RDS

def rds_instances(account: AccountSession, account_id: str, region: str, *,
                  known: Known | None = None) -> list[ResourceDocument]:
    rds = account.client("rds", region)
    docs = []
    for db in _pages(rds, "describe_db_instances", "DBInstances"):
        replicas = db.get("ReadReplicaDBInstanceIdentifiers", [])
        source = db.get("ReadReplicaSourceDBInstanceIdentifier")
        status = db.get("DBInstanceStatus")
        docs.append(make_document(
            resource_type="rds_db_instance", arn=db["DBInstanceArn"], resource_id=db["DBInstanceIdentifier"],
            name=db["DBInstanceIdentifier"], account_id=account_id, account_name=account.name, region=region,
            state=status, tags=tags_from_list(db.get("TagList")),
            attributes={"engine": db.get("Engine"), "engine_version": db.get("EngineVersion"),
                        "instance_class": db.get("DBInstanceClass"), "multi_az": bool(db.get("MultiAZ")),
                        "storage_gb": db.get("AllocatedStorage"), "cluster": db.get("DBClusterIdentifier"),
                        "endpoint": (db.get("Endpoint") or {}).get("Address"),
                        "storage_encrypted": db.get("StorageEncrypted")},
            relations={"read_replicas": replicas, **({"source_instance": [source]} if source else {})},
            constraints={"has_read_replicas": bool(replicas), "is_read_replica": bool(source),
                         "deletion_protection": bool(db.get("DeletionProtection")),
                         "can_stop": status == "available" and not replicas and not source
                         and not db.get("DBClusterIdentifier")},
        ))
    return docs


def rds_clusters(account: AccountSession, account_id: str, region: str, *,
                 known: Known | None = None) -> list[ResourceDocument]:
    docs = []
    for c in _pages(account.client("rds", region), "describe_db_clusters", "DBClusters"):
        members = c.get("DBClusterMembers", [])
        writers = [m["DBInstanceIdentifier"] for m in members if m.get("IsClusterWriter")]
        replicas = c.get("ReadReplicaIdentifiers", [])
        scaling = c.get("ServerlessV2ScalingConfiguration") or {}
        serverless_v2 = {"min_acu": scaling.get("MinCapacity"), "max_acu": scaling.get("MaxCapacity")} if scaling else None
        docs.append(_doc(
            account, account_id, region, resource_type="rds_db_cluster", arn=c["DBClusterArn"],
            resource_id=c["DBClusterIdentifier"], name=c["DBClusterIdentifier"], state=c.get("Status"),
            tags=tags_from_list(c.get("TagList")),
            attributes={"engine": c.get("Engine"), "engine_version": c.get("EngineVersion"),
                        "multi_az": bool(c.get("MultiAZ")), "endpoint": c.get("Endpoint"),
                        "reader_endpoint": c.get("ReaderEndpoint"), "storage_encrypted": c.get("StorageEncrypted"),
                        "writer": writers[0] if writers else None,
                        "engine_mode": c.get("EngineMode") if c.get("EngineMode") != "provisioned" else None,
                        "serverless_v2": serverless_v2},
            relations={"members": [m["DBInstanceIdentifier"] for m in members], "read_replicas": replicas},
            constraints={"has_members": bool(members), "has_read_replicas": bool(replicas),
                         "deletion_protection": bool(c.get("DeletionProtection"))},
        ))
    return docs


# ----------------------------------------------------------------------------------------------- EC2

# An incremental EC2 listing asks which instances exist, in which state, with which tags (DescribeInstanceStatus
# and DescribeTags: a few hundred bytes an instance) instead of describing every instance again (several KB
# each, and the costliest listing of a re-sync: ~80% of moto's CPU at 10k resources). An instance is described
# again when it is new or its state changed; a stop and start is also when its type, public IP and volumes may
# change. What changes without a state change between two incremental runs (an Elastic IP associated, a volume
# attached: the volume's own document says so at once; a stop and start completed in between) is read again by
# the next full sync (the app's schedule: every 6 hours; `cloudops sync --full`).
_ID_FILTER_VALUES = 200  # EC2 filters take at most 200 values


def _instance_arn(partition: str, region: str, account_id: str, instance_id: str) -> str:
    return f"arn:{partition}:ec2:{region}:{account_id}:instance/{instance_id}"


def _autoscaling_group(tags: dict[str, str]) -> dict[str, list[str]]:
    """The Auto Scaling group relation an instance's tags give (AWS tags the instances a group launches)."""
    group = tags.get("aws:autoscaling:groupName")
    return {"autoscaling_group": [group]} if group else {}


def _instance_document(account: AccountSession, account_id: str, region: str, partition: str,
                       i: dict) -> ResourceDocument | None:
    """One DescribeInstances item as a document; None for a terminated instance."""
    state = (i.get("State") or {}).get("Name")
    if state == "terminated":
        return None
    tags = tags_from_list(i.get("Tags"))
    volumes = [m["Ebs"]["VolumeId"] for m in i.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("VolumeId")]
    return _doc(
        account, account_id, region, resource_type="ec2_instance",
        arn=_instance_arn(partition, region, account_id, i["InstanceId"]),
        resource_id=i["InstanceId"], name=tags.get("Name") or i["InstanceId"], state=state, tags=tags,
        attributes={"instance_type": i.get("InstanceType"), "private_ip": i.get("PrivateIpAddress"),
                    "public_ip": i.get("PublicIpAddress"), "vpc_id": i.get("VpcId"),
                    "subnet_id": i.get("SubnetId"), "image_id": i.get("ImageId"),
                    "az": (i.get("Placement") or {}).get("AvailabilityZone"),
                    "platform": i.get("PlatformDetails")},
        relations={**_autoscaling_group(tags), **({"volumes": volumes} if volumes else {})},
    )


def _described_instances(account: AccountSession, account_id: str, region: str, partition: str,
                         **kwargs: Any) -> list[ResourceDocument]:
    reservations = _pages(account.client("ec2", region), "describe_instances", "Reservations", **kwargs)
    return [doc for r in reservations for i in r.get("Instances", [])
            if (doc := _instance_document(account, account_id, region, partition, i)) is not None]


def _instance_retagged(account: AccountSession, seen: ResourceDocument, tags: dict[str, str]) -> ResourceDocument:
    """A known instance in the same state, with the tags just listed (its name and Auto Scaling group
    come from them)."""
    relations = {**{k: v for k, v in seen.relations.items() if k != "autoscaling_group"}, **_autoscaling_group(tags)}
    return make_document(resource_type="ec2_instance", arn=seen.arn, resource_id=seen.resource_id,
                         name=tags.get("Name") or seen.resource_id, account_id=seen.account_id,
                         account_name=account.name, region=seen.region, state=seen.state, tags=tags,
                         attributes=seen.attributes, relations=relations, constraints=seen.constraints)


def ec2_instances(account: AccountSession, account_id: str, region: str, *,
                  known: Known | None = None) -> list[ResourceDocument]:
    """Terminated instances are skipped: they linger in the API for an hour but no operation applies.
    With known instances, the listing is incremental (see above)."""
    partition = _partition(account, region)
    if not known or not any(d.resource_type == "ec2_instance" for d in known.values()):
        return _described_instances(account, account_id, region, partition)
    client = account.client("ec2", region)
    try:
        states = {s["InstanceId"]: (s.get("InstanceState") or {}).get("Name")
                  for s in _pages(client, "describe_instance_status", "InstanceStatuses", IncludeAllInstances=True)}
        tags: dict[str, dict[str, str]] = {}
        for tag in _pages(client, "describe_tags", "Tags", Filters=[{"Name": "resource-type", "Values": ["instance"]}]):
            tags.setdefault(tag["ResourceId"], {})[str(tag["Key"])] = str(tag.get("Value", ""))
    except ClientError as err:  # a policy written before these two calls were used: list as a full sync does
        if error_code(err) not in _DENIED:
            raise
        return _described_instances(account, account_id, region, partition)
    docs, unread = [], []
    for instance_id, state in states.items():
        if state == "terminated":
            continue
        seen = _reuse(known, "ec2_instance", instance_id, arn=_instance_arn(partition, region, account_id, instance_id))
        if seen is None or seen.state != state:
            unread.append(instance_id)
        else:
            docs.append(_instance_retagged(account, seen, tags.get(instance_id, {})))
    for batch in _batches(unread, _ID_FILTER_VALUES):
        docs.extend(_described_instances(account, account_id, region, partition,
                                         Filters=[{"Name": "instance-id", "Values": batch}]))
    return docs


def ec2_volumes(account: AccountSession, account_id: str, region: str, *,
                known: Known | None = None) -> list[ResourceDocument]:
    partition, docs = _partition(account, region), []
    for v in _pages(account.client("ec2", region), "describe_volumes", "Volumes"):
        tags = tags_from_list(v.get("Tags"))
        attached = [a["InstanceId"] for a in v.get("Attachments", []) if a.get("InstanceId")]
        docs.append(_doc(
            account, account_id, region, resource_type="ec2_volume",
            arn=f"arn:{partition}:ec2:{region}:{account_id}:volume/{v['VolumeId']}",
            resource_id=v["VolumeId"], name=tags.get("Name") or v["VolumeId"], state=v.get("State"), tags=tags,
            attributes={"size_gb": v.get("Size"), "volume_type": v.get("VolumeType"), "encrypted": v.get("Encrypted"),
                        "iops": v.get("Iops"), "az": v.get("AvailabilityZone"), "snapshot_id": v.get("SnapshotId"),
                        "device": next((a.get("Device") for a in v.get("Attachments", [])), None)},
            relations={"attached_to": attached},
        ))
    return docs


# ------------------------------------------------------------------------------------------ S3 (global)

def _bucket_region(location: str | None) -> str:
    """GetBucketLocation's LocationConstraint: None/"" is us-east-1, the legacy "EU" is eu-west-1."""
    if not location:
        return "us-east-1"
    return "eu-west-1" if location == "EU" else location


def _locate(s3, name: str, fallback: str) -> str:
    """GetBucketLocation; when that is denied, the region header HeadBucket returns even on a 403."""
    try:
        return _bucket_region(s3.get_bucket_location(Bucket=name).get("LocationConstraint"))
    except ClientError as err:
        if error_code(err) not in _DENIED:
            raise
    try:
        return s3.head_bucket(Bucket=name).get("BucketRegion") or fallback
    except ClientError as err:
        if error_code(err) in _GONE:
            raise
        return err.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region") or fallback


def s3_buckets(account: AccountSession, account_id: str, region: str, *,
               known: Known | None = None) -> list[ResourceDocument]:
    """Every bucket of the account, listed once from ``region``; each document carries the bucket's region.

    ListBuckets reports ``BucketRegion`` when paged; GetBucketLocation is the fallback. A detail that may
    not be read (AccessDenied on tagging, versioning) is left out; the bucket is kept. A bucket deleted
    while it was being read is skipped. A known bucket with the same creation time reuses its region,
    tags and versioning (no per-bucket call); a re-created one is read again.
    """
    s3, docs = account.client("s3", region), []
    buckets = list(_pages(s3, "list_buckets", "Buckets", PaginationConfig={"PageSize": 1000}))
    seen_by_name = {b["Name"]: _reuse(known, "s3_bucket", b["Name"], created=_iso(b.get("CreationDate")))
                    for b in buckets}
    new = sum(1 for seen in seen_by_name.values() if seen is None)
    for bucket in buckets:
        try:
            docs.append(_bucket_document(account, account_id, s3, bucket, region, seen_by_name[bucket["Name"]], new))
        except ClientError as err:
            if error_code(err) not in _GONE:
                raise
    return docs


def _bucket_document(account: AccountSession, account_id: str, s3, bucket: dict, region: str,
                     seen: ResourceDocument | None = None, new: int = 1) -> ResourceDocument:
    """``new``: how many of the listing's buckets are read in full (decides whether the tag book pays)."""
    name = bucket["Name"]
    if seen is not None:
        location, tags, constraints = bucket.get("BucketRegion") or seen.region, seen.tags, seen.constraints
        arn = f"arn:{_partition(account, location)}:s3:::{name}"
    else:
        location = bucket.get("BucketRegion") or _locate(s3, name, fallback=region)
        arn = f"arn:{_partition(account, location)}:s3:::{name}"
        local = account.client("s3", location)
        tags = tags_of(_books(account), location, arn, new,
                       lambda: tags_from_list(_detail(local.get_bucket_tagging, {}, Bucket=name).get("TagSet")))
        versioning = _detail(local.get_bucket_versioning, None, Bucket=name)
        constraints = {"versioning": None if versioning is None else versioning.get("Status") or "Disabled"}
    return _doc(
        account, account_id, location, resource_type="s3_bucket", arn=arn,
        resource_id=name, name=name, tags=tags, attributes={"created": _iso(bucket.get("CreationDate"))},
        constraints=constraints,
    )


# -------------------------------------------------------------------------------------------- Lambda

def _event_sources(client) -> dict[str, list[str]]:
    """Function ARN -> the ARNs of what triggers it (an SQS queue, a DynamoDB table's stream: named by its
    table), from one paginated ListEventSourceMappings of the region; empty when it may not be read. This
    is how "the lambda triggered by orders-queue" and "the queue that feeds resize-images" are answered."""
    sources: dict[str, list[str]] = {}
    try:
        for mapping in _pages(client, "list_event_source_mappings", "EventSourceMappings"):
            source, function = mapping.get("EventSourceArn"), mapping.get("FunctionArn")
            if source and function:
                function = ":".join(function.split(":")[:7])  # without a version or alias qualifier
                sources.setdefault(function, []).append(source.split("/stream/")[0])
    except ClientError as err:
        if error_code(err) not in _DENIED:
            raise
    return sources


def lambda_functions(account: AccountSession, account_id: str, region: str, *,
                     known: Known | None = None) -> list[ResourceDocument]:
    """ListFunctions returns everything but the tags: a known function, unmodified since, reuses its tags.
    Its triggers are read for the whole region in one listing, every time (they change without the function)."""
    client, docs = account.client("lambda", region), []
    triggers = _event_sources(client)
    functions = [(f, _reuse(known, "lambda_function", f["FunctionName"], arn=f["FunctionArn"],
                            last_modified=f.get("LastModified"))) for f in _pages(client, "list_functions", "Functions")]
    new = sum(1 for _, seen in functions if seen is None)
    for f, seen in functions:
        tags = seen.tags if seen else tags_of(
            _books(account), region, f["FunctionArn"], new,
            lambda: _detail(client.list_tags, {}, Resource=f["FunctionArn"]).get("Tags", {}))
        docs.append(_doc(
            account, account_id, region, resource_type="lambda_function", arn=f["FunctionArn"],
            resource_id=f["FunctionName"], name=f["FunctionName"], state=f.get("State"), tags=tags,
            attributes={"runtime": f.get("Runtime"), "memory_mb": f.get("MemorySize"), "timeout_s": f.get("Timeout"),
                        "last_modified": f.get("LastModified"), "handler": f.get("Handler"),
                        "package_type": f.get("PackageType"), "architectures": f.get("Architectures"),
                        "description": f.get("Description") or None},
            relations={"event_sources": triggers[f["FunctionArn"]]} if f["FunctionArn"] in triggers else {},
        ))
    return docs


# ------------------------------------------------------------------------------------------ DynamoDB

def dynamodb_tables(account: AccountSession, account_id: str, region: str, *,
                    known: Known | None = None) -> list[ResourceDocument]:
    """ListTables returns names only: a known table is reused whole (its status and counts included)."""
    client, docs = account.client("dynamodb", region), []
    tables = [(name, _reuse(known, "dynamodb_table", name)) for name in _pages(client, "list_tables", "TableNames")]
    new = sum(1 for _, seen in tables if seen is None)
    for table_name, seen in tables:
        if seen is not None:
            docs.append(_reused(account, seen))
            continue
        described = _describe(client.describe_table, TableName=table_name)
        if described is None:
            continue
        t = described["Table"]
        tags = tags_of(_books(account), region, t["TableArn"], new, lambda: tags_from_list(
            _detail(lambda: list(_pages(client, "list_tags_of_resource", "Tags", ResourceArn=t["TableArn"])), [])))
        docs.append(_doc(
            account, account_id, region, resource_type="dynamodb_table", arn=t["TableArn"],
            resource_id=t["TableName"], name=t["TableName"], state=t.get("TableStatus"), tags=tags,
            attributes={"item_count": t.get("ItemCount"), "size_bytes": t.get("TableSizeBytes"),
                        "billing_mode": (t.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED"),
                        "stream_enabled": (t.get("StreamSpecification") or {}).get("StreamEnabled")},
            constraints={"deletion_protection": bool(t.get("DeletionProtectionEnabled"))},
        ))
    return docs


# ----------------------------------------------------------------------------------------------- ECS

def _ecs_cluster_arns(client) -> list[str]:
    return list(_pages(client, "list_clusters", "clusterArns"))


def _ecs_known(account: AccountSession, known: Known | None, resource_type: str,
               arns: list[str]) -> tuple[list[ResourceDocument], list[str]]:
    """Listed ECS ARNs (the name is their last segment) split into the known documents, reused whole
    (status and counts included), and the ARNs still to describe."""
    reused, unknown = [], []
    for arn in arns:
        seen = _reuse(known, resource_type, arn.rsplit("/", 1)[-1], arn=arn)
        if seen is not None:
            reused.append(_reused(account, seen))
        else:
            unknown.append(arn)
    return reused, unknown


def ecs_clusters(account: AccountSession, account_id: str, region: str, *,
                 known: Known | None = None) -> list[ResourceDocument]:
    client = account.client("ecs", region)
    docs, unknown = _ecs_known(account, known, "ecs_cluster", _ecs_cluster_arns(client))
    for batch in _batches(unknown, 100):
        for c in client.describe_clusters(clusters=batch, include=["TAGS"]).get("clusters", []):
            docs.append(_doc(
                account, account_id, region, resource_type="ecs_cluster", arn=c["clusterArn"],
                resource_id=c["clusterName"], name=c["clusterName"], state=c.get("status"),
                tags=tags_from_list(c.get("tags"), "key", "value"),
                attributes={"active_services": c.get("activeServicesCount"),
                            "running_tasks": c.get("runningTasksCount"),
                            "container_instances": c.get("registeredContainerInstancesCount"),
                            "capacity_providers": c.get("capacityProviders")},
            ))
    return docs


def ecs_services(account: AccountSession, account_id: str, region: str, *,
                 known: Known | None = None) -> list[ResourceDocument]:
    client, docs = account.client("ecs", region), []
    for cluster_arn in _ecs_cluster_arns(client):
        service_arns = list(_pages(client, "list_services", "serviceArns", cluster=cluster_arn))
        reused, unknown = _ecs_known(account, known, "ecs_service", service_arns)
        docs.extend(reused)
        for batch in _batches(unknown, 10):
            described = client.describe_services(cluster=cluster_arn, services=batch, include=["TAGS"])
            for s in described.get("services", []):
                target_groups = [lb["targetGroupArn"] for lb in s.get("loadBalancers", []) if lb.get("targetGroupArn")]
                providers = [p.get("capacityProvider") for p in s.get("capacityProviderStrategy", [])]
                docs.append(_doc(
                    account, account_id, region, resource_type="ecs_service", arn=s["serviceArn"],
                    resource_id=s["serviceName"], name=s["serviceName"], state=s.get("status"),
                    tags=tags_from_list(s.get("tags"), "key", "value"),
                    attributes={"cluster_arn": s.get("clusterArn") or cluster_arn,
                                "desired_count": s.get("desiredCount"), "running_count": s.get("runningCount"),
                                "pending_count": s.get("pendingCount"), "launch_type": s.get("launchType"),
                                "capacity_providers": providers, "task_definition": s.get("taskDefinition"),
                                "scheduling_strategy": s.get("schedulingStrategy")},
                    relations={"cluster": [s.get("clusterArn") or cluster_arn], "target_groups": target_groups},
                ))
    return docs


# --------------------------------------------------------------------------------------------- ELBv2

def _elbv2_tags(client, arns: list[str], resource_type: str, known: Known | None) -> dict[str, dict[str, str]]:
    """Tags by ARN: a known resource's are reused; DescribeTags (20 ARNs a call) reads the others'."""
    tags: dict[str, dict[str, str]] = {}
    unknown = []
    for arn in arns:
        seen = _reuse(known, resource_type, arn)
        if seen is not None:
            tags[arn] = seen.tags
        else:
            unknown.append(arn)
    for batch in _batches(unknown, 20):
        for d in client.describe_tags(ResourceArns=batch).get("TagDescriptions", []):
            tags[d["ResourceArn"]] = tags_from_list(d.get("Tags"))
    return tags


def elbv2_load_balancers(account: AccountSession, account_id: str, region: str, *,
                         known: Known | None = None) -> list[ResourceDocument]:
    client = account.client("elbv2", region)
    lbs = list(_pages(client, "describe_load_balancers", "LoadBalancers"))
    tags = _elbv2_tags(client, [lb["LoadBalancerArn"] for lb in lbs], "elbv2_load_balancer", known)
    return [_doc(
        account, account_id, region, resource_type="elbv2_load_balancer", arn=lb["LoadBalancerArn"],
        resource_id=lb["LoadBalancerArn"], name=lb.get("LoadBalancerName"), state=(lb.get("State") or {}).get("Code"),
        tags=tags.get(lb["LoadBalancerArn"], {}),
        attributes={"type": lb.get("Type"), "scheme": lb.get("Scheme"), "dns_name": lb.get("DNSName"),
                    "vpc_id": lb.get("VpcId"),
                    "azs": sorted(z["ZoneName"] for z in lb.get("AvailabilityZones", []) if z.get("ZoneName"))},
    ) for lb in lbs]


def elbv2_target_groups(account: AccountSession, account_id: str, region: str, *,
                        known: Known | None = None) -> list[ResourceDocument]:
    client = account.client("elbv2", region)
    groups = list(_pages(client, "describe_target_groups", "TargetGroups"))
    tags = _elbv2_tags(client, [tg["TargetGroupArn"] for tg in groups], "elbv2_target_group", known)
    return [_doc(
        account, account_id, region, resource_type="elbv2_target_group", arn=tg["TargetGroupArn"],
        resource_id=tg["TargetGroupArn"], name=tg.get("TargetGroupName"), tags=tags.get(tg["TargetGroupArn"], {}),
        attributes={"protocol": tg.get("Protocol"), "port": tg.get("Port"), "target_type": tg.get("TargetType"),
                    "vpc_id": tg.get("VpcId"), "health_check_path": tg.get("HealthCheckPath")},
        relations={"load_balancers": tg.get("LoadBalancerArns", [])},
    ) for tg in groups]


# --------------------------------------------------------------------------------------- Auto Scaling

def autoscaling_groups(account: AccountSession, account_id: str, region: str, *,
                       known: Known | None = None) -> list[ResourceDocument]:
    docs = []
    for g in _pages(account.client("autoscaling", region), "describe_auto_scaling_groups", "AutoScalingGroups"):
        docs.append(_doc(
            account, account_id, region, resource_type="autoscaling_group", arn=g["AutoScalingGroupARN"],
            resource_id=g["AutoScalingGroupName"], name=g["AutoScalingGroupName"], state=g.get("Status"),
            tags=tags_from_list(g.get("Tags")),
            attributes={"min_size": g.get("MinSize"), "max_size": g.get("MaxSize"),
                        "desired_capacity": g.get("DesiredCapacity"),
                        "suspended_processes": sorted(p["ProcessName"] for p in g.get("SuspendedProcesses", [])),
                        "health_check_type": g.get("HealthCheckType"), "azs": sorted(g.get("AvailabilityZones", [])),
                        "launch_template": (g.get("LaunchTemplate") or {}).get("LaunchTemplateName"),
                        "launch_configuration": g.get("LaunchConfigurationName")},
            relations={"members": [i["InstanceId"] for i in g.get("Instances", [])],
                       "target_groups": g.get("TargetGroupARNs", [])},
        ))
    return docs


# ----------------------------------------------------------------------------------------------- SQS

def sqs_queues(account: AccountSession, account_id: str, region: str, *,
               known: Known | None = None) -> list[ResourceDocument]:
    """ListQueues only pages (past 1,000 queues) when MaxResults is sent, hence the page size. It returns
    URLs only: a known queue is reused whole (its message count included)."""
    client, docs = account.client("sqs", region), []
    queues = [(url, _reuse(known, "sqs_queue", url))
              for url in _pages(client, "list_queues", "QueueUrls", PaginationConfig={"PageSize": 1000})]
    new = sum(1 for _, seen in queues if seen is None)
    for url, seen in queues:
        if seen is not None:
            docs.append(_reused(account, seen))
            continue
        got = _describe(client.get_queue_attributes, QueueUrl=url, AttributeNames=["All"])
        if got is None:
            continue
        a = got.get("Attributes", {})
        name = url.rstrip("/").rsplit("/", 1)[-1]
        dlq = (_json(a.get("RedrivePolicy")) or {}).get("deadLetterTargetArn")
        arn = a.get("QueueArn") or f"arn:{_partition(account, region)}:sqs:{region}:{account_id}:{name}"
        tags = tags_of(_books(account), region, arn, new,
                       lambda: _detail(client.list_queue_tags, {}, QueueUrl=url).get("Tags", {}))
        docs.append(_doc(
            account, account_id, region, resource_type="sqs_queue", arn=arn, resource_id=url, name=name, tags=tags,
            attributes={"queue_url": url, "approximate_messages": _int(a.get("ApproximateNumberOfMessages")),
                        "approximate_messages_not_visible": _int(a.get("ApproximateNumberOfMessagesNotVisible")),
                        "visibility_timeout": _int(a.get("VisibilityTimeout")),
                        "fifo": a.get("FifoQueue", "false").lower() == "true",
                        "encrypted": bool(a.get("KmsMasterKeyId")) or a.get("SqsManagedSseEnabled", "false") == "true"},
            relations={"dead_letter_queue": [dlq]} if dlq else {},
        ))
    return docs


# ----------------------------------------------------------------------------------------------- SNS

def sns_topics(account: AccountSession, account_id: str, region: str, *,
               known: Known | None = None) -> list[ResourceDocument]:
    """ListTopics returns ARNs only: a known topic is reused whole."""
    client, docs = account.client("sns", region), []
    topics = [(t["TopicArn"], _reuse(known, "sns_topic", t["TopicArn"])) for t in _pages(client, "list_topics", "Topics")]
    new = sum(1 for _, seen in topics if seen is None)
    for arn, seen in topics:
        if seen is not None:
            docs.append(_reused(account, seen))
            continue
        got = _describe(client.get_topic_attributes, TopicArn=arn)
        if got is None:
            continue
        a = got.get("Attributes", {})
        tags = tags_of(_books(account), region, arn, new,
                       lambda: tags_from_list(_detail(client.list_tags_for_resource, {}, ResourceArn=arn).get("Tags")))
        docs.append(_doc(
            account, account_id, region, resource_type="sns_topic", arn=arn, resource_id=arn,
            name=arn.rsplit(":", 1)[-1], tags=tags,
            attributes={"subscriptions_confirmed": _int(a.get("SubscriptionsConfirmed")),
                        "display_name": a.get("DisplayName"), "fifo": a.get("FifoTopic", "false").lower() == "true",
                        "encrypted": bool(a.get("KmsMasterKeyId"))},
        ))
    return docs


# ----------------------------------------------------------------------------------------------- EKS

def eks_clusters(account: AccountSession, account_id: str, region: str, *,
                 known: Known | None = None) -> list[ResourceDocument]:
    """ListClusters returns names only: a known cluster is reused whole (its status included)."""
    client, docs = account.client("eks", region), []
    for name in _pages(client, "list_clusters", "clusters"):
        seen = _reuse(known, "eks_cluster", name)
        if seen is not None:
            docs.append(_reused(account, seen))
            continue
        got = _describe(client.describe_cluster, name=name)
        if got is None:
            continue
        c = got["cluster"]
        docs.append(_doc(
            account, account_id, region, resource_type="eks_cluster", arn=c["arn"], resource_id=c["name"],
            name=c["name"], state=c.get("status"), tags=c.get("tags") or {},
            attributes={"version": c.get("version"), "platform_version": c.get("platformVersion"),
                        "endpoint": c.get("endpoint"), "vpc_id": (c.get("resourcesVpcConfig") or {}).get("vpcId")},
        ))
    return docs


# -------------------------------------------------------------------------------------- CloudFormation

def cloudformation_stacks(account: AccountSession, account_id: str, region: str, *,
                          known: Known | None = None) -> list[ResourceDocument]:
    docs = []
    for s in _pages(account.client("cloudformation", region), "describe_stacks", "Stacks"):
        if s.get("StackStatus") == "DELETE_COMPLETE":
            continue
        parent = s.get("ParentId")
        docs.append(_doc(
            account, account_id, region, resource_type="cloudformation_stack", arn=s["StackId"],
            resource_id=s["StackName"], name=s["StackName"], state=s.get("StackStatus"),
            tags=tags_from_list(s.get("Tags")),
            attributes={"description": s.get("Description"), "created": _iso(s.get("CreationTime")),
                        "last_updated": _iso(s.get("LastUpdatedTime"))},
            relations={"parent_stack": [parent]} if parent else {},
            constraints={"deletion_protection": bool(s.get("EnableTerminationProtection"))},
        ))
    return docs


# ----------------------------------------------------------------------------------------- IAM (global)

def iam_roles(account: AccountSession, account_id: str, region: str, *,
              known: Known | None = None) -> list[ResourceDocument]:
    """ListRoles returns no tags; fetching them would cost one throttled IAM call per role, so none are kept."""
    return [_doc(
        account, account_id, "us-east-1", resource_type="iam_role", arn=r["Arn"], resource_id=r["RoleName"],
        name=r["RoleName"],
        attributes={"path": r.get("Path"), "created": _iso(r.get("CreateDate")), "description": r.get("Description"),
                    "service_linked": (r.get("Path") or "").startswith("/aws-service-role/")},
    ) for r in _pages(account.client("iam", region), "list_roles", "Roles")]


# The registry the sync engine iterates, keyed by botocore service name.
COLLECTORS: dict[str, list[Collector]] = {
    "ec2": [ec2_instances, ec2_volumes],
    "rds": [rds_instances, rds_clusters],
    "s3": [s3_buckets],
    "lambda": [lambda_functions],
    "dynamodb": [dynamodb_tables],
    "ecs": [ecs_clusters, ecs_services],
    "elbv2": [elbv2_load_balancers, elbv2_target_groups],
    "autoscaling": [autoscaling_groups],
    "sqs": [sqs_queues],
    "sns": [sns_topics],
    "eks": [eks_clusters],
    "cloudformation": [cloudformation_stacks],
    "iam": [iam_roles],
}
