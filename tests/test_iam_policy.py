"""docs/iam-sync-policy.json is the least privilege a sync needs: every AWS operation a full and an
incremental sync of the demo estate (every collector, the tag book, the caller's policies) makes is allowed by it, and it allows
nothing that changes anything. A collector that starts calling something new fails here until the
policy (and docs/IAM.md) say so."""

from __future__ import annotations

import json

import numpy as np

from app import awsclient
from app.demo.demo_estate import demo_config, simulated_estate
from app.estate.resource_store import ResourceStore
from app.estate.sync import SyncEngine
from conftest import ROOT

POLICY = ROOT / "docs" / "iam-sync-policy.json"
# IAM's names where they differ from the API's (service prefix, or the action behind an operation).
PREFIX = {"elbv2": "elasticloadbalancing", "resourcegroupstaggingapi": "tag"}
ACTION = {"s3:ListBuckets": "s3:ListAllMyBuckets", "s3:HeadBucket": "s3:ListBucket"}
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}


def iam_action(service: str, operation: str) -> str:
    action = f"{PREFIX.get(service, service)}:{operation}"
    return ACTION.get(action, action)


def allowed() -> set[str]:
    policy = json.loads(POLICY.read_text())
    return {a for s in policy["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}


def test_the_policy_allows_only_reads():
    for action in allowed():
        assert action.split(":", 1)[1].startswith(("Describe", "List", "Get")), action


def test_a_full_sync_of_the_demo_estate_needs_nothing_the_policy_does_not_allow(tmp_path, monkeypatch):
    calls: set[str] = set()

    def record(client, _account):
        service = client.meta.service_model.service_name
        client.meta.events.register("before-call", lambda model, **kw: calls.add(iam_action(service, model.name)))

    monkeypatch.setattr(awsclient, "CLIENT_HOOKS", [record])
    with simulated_estate(extra_per_scope=12):  # enough new resources per scope for the tag book
        store = ResourceStore(tmp_path / "index")
        try:
            engine = SyncEngine(store, lambda texts: np.full((len(texts), 384), 0.05, dtype=np.float32),
                                demo_config().effective_accounts())
            report = engine.run(full=True)
            incremental = engine.run()  # the scheduled re-sync lists some services differently (EC2)
        finally:
            store.close()
    assert report.ok and incremental.ok, report.errors + incremental.errors
    services = {c.split(":")[0] for c in calls}
    assert {"ec2", "rds", "s3", "lambda", "dynamodb", "ecs", "elasticloadbalancing", "autoscaling", "sqs", "sns",
            "eks", "cloudformation", "iam", "tag"} <= services  # the sync really went everywhere
    missing = sorted(calls - allowed() - NEEDS_NO_PERMISSION)
    assert not missing, f"add to {POLICY.name} and docs/IAM.md: {missing}"
