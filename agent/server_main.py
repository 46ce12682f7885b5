"""uvicorn's import target for ``cloudops server`` (each worker process builds its own stack)."""

from __future__ import annotations

import os
from pathlib import Path

from agent.planner import AgentStack
from agent.policy import load_deny_rules
from agent.server import create_app


def _factory() -> AgentStack:
    policy = os.environ.get("CLOUDOPS_SERVER_POLICY")
    rules = load_deny_rules(Path(policy)) if policy else []
    # A team deployment may keep the playbook vectors in a Qdrant server (CLOUDOPS_QDRANT_URL) and the
    # playbook metadata / vector cache in a shared database (CLOUDOPS_METADATA_DB_URL, a SQLModel URL).
    db_url = os.environ.get("CLOUDOPS_METADATA_DB_URL") or None
    return AgentStack.build(deny_rules=rules, qdrant_location=os.environ.get("CLOUDOPS_QDRANT_URL") or None,
                            db_url=db_url, cache_dir=None if db_url else _cache_dir())


def _cache_dir() -> Path:
    """Where a single server keeps the playbook index's metadata and vector cache between starts (the index is
    derived from the playbooks, botocore and the model only; no request is ever stored): CLOUDOPS_AGENT_CACHE,
    else the user's cache folder."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get("CLOUDOPS_AGENT_CACHE") or Path(user_cache_dir("cloudops-agent", appauthor=False))
                / "server-index")


app = create_app(_factory)
