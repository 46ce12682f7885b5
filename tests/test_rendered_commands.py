"""Every playbook's rendered AWS CLI line, run by the real AWS CLI against moto.

The demo estate is built in moto and synced like a real one; one prompt per playbook is planned by the
local agent stack; each step's argv is run by the `aws` executable (awscli) with the step's own
--profile and --region. A command line the CLI cannot parse exits 2; one AWS (moto) refuses exits 254/255;
success is 0. (awscli v1 does not always take the profiles' assumed roles against moto, so a call may run in
moto's default account and answer "not found": the check here is that the CLI accepts every line the
planner renders, exactly as rendered.) Read-only playbooks run first, then changes, then deletions, so targets still exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from app.config import AccountConfig, Config

# prompt per playbook id, over the demo estate (app/demo/demo_estate.py)
PROMPTS = {
    "aws_rds_describe_instance": "describe pg-instance-main2",
    "aws_rds_describe_cluster": "describe the payments-aurora-cluster",
    "aws_ec2_describe_instances": "show web-server-2 in production",
    "aws_ec2_describe_volumes": "describe volume web-server-1-data in production",
    "aws_s3_list_objects": "list objects in acme-prod-assets under images/",
    "aws_s3_get_versioning": "is versioning on for acme-prod-db-backups?",
    "aws_lambda_get_configuration": "show the configuration of image-resizer in production",
    "aws_dynamodb_describe_table": "describe the sessions table in production",
    "aws_sqs_get_attributes": "show attributes of payments-queue",
    "aws_autoscaling_describe_group": "describe web-asg in production",
    "aws_ecs_describe_service": "describe checkout-worker",
    "aws_elbv2_describe_target_health": "check target health of web-tg",
    "aws_elbv2_describe_load_balancer": "describe the web-alb load balancer",
    "aws_sns_list_subscriptions": "list subscriptions of ops-alerts",
    "aws_sns_get_topic_attributes": "show the attributes of the order-events topic",
    "aws_eks_describe_cluster": "describe the platform-prod eks cluster",
    "aws_cloudformation_describe_stack": "describe the core-network stack",
    # changes
    "aws_rds_create_snapshot": "snapshot pg-instance-main2 named pre-upgrade",
    "aws_rds_reboot_instance": "reboot billing-mysql",
    "aws_rds_failover_instance": "fail over pg-instance-main1 to its standby",
    "aws_rds_modify_instance_class": "resize pg-instance-main2 to db.r6g.2xlarge now",
    "aws_rds_stop_instance": "Stop pg-instance-main1",
    "aws_rds_snapshot_then_stop": "snapshot billing-mysql then stop it",
    "aws_rds_start_instance": "start legacy-reports-db",
    "aws_rds_stop_cluster": "stop the payments-aurora-cluster",
    "aws_rds_start_cluster": "start the payments-aurora-cluster",
    "aws_rds_failover_cluster": "fail over the payments-aurora-cluster",
    "aws_ec2_reboot_instances": "reboot web-server-1 and web-server-2 in production",
    "aws_ec2_stop_instances": "stop web-server-2 in production",
    "aws_ec2_start_instances": "start web-server-3",
    "aws_ec2_create_image": "create an AMI of batch-worker-1 named batch-golden",
    "aws_ec2_create_volume_snapshot": "snapshot the volume web-server-1-data in production",
    "aws_s3_enable_versioning": "enable versioning on acme-prod-assets",
    "aws_s3_suspend_versioning": "suspend versioning on acme-prod-access-logs",
    "aws_s3_block_public_access": "block public access on acme-prod-assets",
    "aws_lambda_invoke_function": "invoke orders-db-secret-rotator",
    "aws_lambda_set_reserved_concurrency": "set reserved concurrency of image-resizer in production to 5",
    "aws_lambda_remove_reserved_concurrency": "remove the reserved concurrency of image-resizer in production",
    "aws_dynamodb_create_backup": "back up the sessions table in production named sessions-backup",
    "aws_dynamodb_enable_pitr": "enable point in time recovery on the sessions table in production",
    "aws_sqs_set_visibility_timeout": "set the visibility timeout of payments-queue to 120 seconds",
    "aws_autoscaling_set_desired_capacity": "scale web-asg in production to 3",
    "aws_autoscaling_suspend_processes": "suspend the Launch process on web-asg in production",
    "aws_autoscaling_resume_processes": "resume all processes on web-asg in production",
    "aws_autoscaling_start_instance_refresh": "start an instance refresh on web-asg in production",
    "aws_ecs_set_desired_count": "set checkout-worker desired count to 2",
    "aws_ecs_force_new_deployment": "force a new deployment of checkout-worker",
    "aws_sns_publish_message": "publish 'deploy finished' to ops-alerts",
    "aws_sqs_purge_queue": "purge image-resize-jobs",
    # deletions last
    "aws_ec2_terminate_instances": "terminate batch-worker-2",
    "aws_rds_delete_instance": "delete legacy-reports-db with a final snapshot named legacy-final",
    "aws_s3_delete_bucket": "delete the bucket acme-prod-access-logs",
}
# Before these, the estate is synced again: earlier steps changed states the preconditions read.
RESYNC_BEFORE = {"aws_rds_start_cluster", "aws_rds_failover_cluster", "aws_ec2_terminate_instances"}
# State a playbook's precondition needs, set up directly (the CLI calls above run as another account).
def _cluster(wanted: str):
    """Bring the demo cluster to ``wanted`` (stopped or available), whether or not the CLI step before
    this one already did (that depends on which account awscli's call landed in)."""
    def setup() -> None:
        rds = boto3.Session(profile_name="prod").client("rds", region_name="us-east-1")
        status = rds.describe_db_clusters(DBClusterIdentifier="payments-aurora-cluster")["DBClusters"][0]["Status"]
        if status != wanted:
            action = rds.stop_db_cluster if wanted == "stopped" else rds.start_db_cluster
            action(DBClusterIdentifier="payments-aurora-cluster")
    return setup


SETUP = {"aws_rds_start_cluster": _cluster("stopped"), "aws_rds_failover_cluster": _cluster("available")}


@pytest.fixture(scope="module")
def estate(tmp_path_factory, stack):
    from app.estate.context import build_request
    from app.demo.demo_estate import DEMO_ACCOUNTS, build_estate, reset_moto, start_moto, write_aws_config
    from app.estate.resource_store import ResourceStore
    from app.estate.sync import SyncEngine

    home = tmp_path_factory.mktemp("rendered")
    server, endpoint = start_moto()
    saved = dict(os.environ)
    try:
        reset_moto(endpoint)
        env = write_aws_config(home / "aws", DEMO_ACCOUNTS, endpoint)
        os.environ.update(env)
        build_estate(DEMO_ACCOUNTS)
        config = Config(accounts=[AccountConfig(name=a.name, profile=a.profile, regions=a.regions) for a in DEMO_ACCOUNTS])
        store = ResourceStore(home / "index")
        report = SyncEngine(store, stack.index.embedder.encode, config.effective_accounts()).run()
        assert report.ok, report.errors
        from app.estate.lookup import LookupIndex

        state = {"index": LookupIndex.load(store, lambda t: stack.index.embedder.encode([t])[0])}

        def resync() -> None:
            assert SyncEngine(store, stack.index.embedder.encode, config.effective_accounts()).run(full=True).ok
            state["index"] = LookupIndex.load(store, lambda t: stack.index.embedder.encode([t])[0])

        yield {"request": lambda prompt: build_request(prompt, state["index"], store, config), "resync": resync,
               "env": {**saved, **env}, "endpoint": endpoint}
        store.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI (awscli, a test extra) is not installed")
def test_every_playbook_renders_a_command_the_aws_cli_runs(estate, stack, tmp_path):
    from agent.playbook import default_playbook_dir

    ids = {p.stem for p in Path(default_playbook_dir()).glob("*.yaml")}
    assert set(PROMPTS) == ids, f"playbooks without a prompt here: {sorted(ids - set(PROMPTS))}"
    planner = stack.planner("local")
    problems, ran = [], 0
    for playbook_id, prompt in PROMPTS.items():
        if playbook_id in SETUP:
            SETUP[playbook_id]()
        if playbook_id in RESYNC_BEFORE:
            estate["resync"]()
        plan = planner.plan(estate["request"](prompt))
        if plan.classification.playbook != playbook_id or plan.clarification or not plan.script.steps:
            problems.append(f"{playbook_id}: planned {plan.classification.playbook}, "
                            f"clarification={plan.clarification and plan.clarification.question}, warnings={plan.warnings}")
            continue
        for step in plan.script.steps:
            assert step.argv[0] == "aws" and "--region" in step.argv and "--profile" in step.argv
            # The plan's line, plus only where to reach moto (awscli v1 ignores AWS_ENDPOINT_URL for some services).
            argv = [*step.argv, "--endpoint-url", estate["endpoint"]]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=estate["env"])
            ran += 1
            # Exit 2 is the CLI refusing the line itself (unknown option, bad value): that is our bug.
            # awscli v1 does not always assume the profiles' roles against moto, so a call may run as moto's
            # default account and may answer "not found" (255): the line was still accepted.
            if out.returncode == 2 or "usage:" in out.stderr or "Unknown options" in out.stderr:
                problems.append(f"{playbook_id}: `{step.command}` exited {out.returncode}: {out.stderr.strip()[-300:]}")
    assert not problems, "\n".join(problems)
    assert ran >= len(PROMPTS)
