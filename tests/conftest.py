"""Shared fixtures. The agent stack (embedding model + playbook index) is built once per session:
it is the real one, no part of it is mocked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
EVAL_DIR = ROOT / "tests" / "eval"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    from agent.planner import AgentStack

    return AgentStack.build(PLAYBOOKS, cache_dir=tmp_path_factory.mktemp("agent-cache"))


@pytest.fixture(scope="session")
def planner(stack):
    return stack.planner("server")


@pytest.fixture
def seed_resource() -> dict:
    """The seed's example: a production, Multi-AZ, no-replica RDS postgres in us-west-2."""
    return {
        "resource_type": "rds_db_instance", "resource_id": "pg-instance-main1", "name": "pg-instance-main1",
        "arn": "arn:aws:rds:us-west-2:111111111111:db:pg-instance-main1", "account_id": "111111111111",
        "account_name": "production", "region": "us-west-2", "current_state": "available", "engine": "postgres",
        "multi_az": True, "tags": {"env": "production", "app": "main"},
        "relations": {"read_replicas": []}, "constraints": {"has_read_replicas": False, "can_stop": True},
    }
