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


class CountingEmbedder:
    """The real model, counting how many texts it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.dimension, self.name, self.texts = inner, inner.dimension, inner.name, 0

    def encode(self, texts):
        self.texts += len(texts)
        return self.inner.encode(texts)


def store_of(directory: Path, documents: list, embedder):
    """A ResourceStore under ``directory`` holding ``documents`` and their meaning vectors, written scope by
    scope as a sync writes them."""
    from app.estate.resource_store import ResourceStore

    store = ResourceStore(directory)
    vectors = dict(zip([d.id for d in documents], embedder.encode([d.text for d in documents])))
    scopes: dict[str, list] = {}
    for doc in documents:
        scopes.setdefault(f"{doc.account_id}/{doc.region}/{doc.service}", []).append(doc)
    for scope, docs in scopes.items():
        store.apply_scope(scope, docs, vectors)
    return store


def index_eval_estate(home: Path, embedder, *, write_qdrant: bool = True) -> None:
    """The eval estate (tests/eval/estate.yaml) written into ``home/index`` as a sync would, scope by scope:
    for tests that need an index without moto."""
    from collections import defaultdict

    from app.demo.lookup_eval import documents_from_estate
    from app.estate.resource_store import ResourceStore

    docs, _ = documents_from_estate(EVAL_DIR / "estate.yaml")
    store = ResourceStore(home / "index")
    vectors = dict(zip([d.id for d in docs], embedder.encode([d.text for d in docs])))
    by_scope = defaultdict(list)
    for d in docs:
        by_scope[f"{d.account_id}/{d.region}/{d.service}"].append(d)
    for scope, scoped in by_scope.items():
        store.apply_scope(scope, scoped, vectors, write_qdrant=write_qdrant)
    store.close()


def wait_for_endpoint(home: Path, proc, timeout: float = 120) -> dict:
    """endpoint.json of a started `cloudops app --headless` once it answers /v1/health with its token; the
    app's log (``home/app.log``) in the error when it exits first."""
    import json
    import time

    import httpx

    deadline = time.monotonic() + timeout
    path = home / "endpoint.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = home / "app.log"
            raise RuntimeError(f"cloudops app exited {proc.returncode}: "
                               f"{log.read_text()[-2000:] if log.exists() else ''}")
        if path.exists():
            info = json.loads(path.read_text())
            try:
                if httpx.get(f"{info['url']}/v1/health", headers={"Authorization": f"Bearer {info['token']}"},
                             timeout=2).status_code == 200:
                    return info
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise TimeoutError("cloudops app did not serve /v1/health")
