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
    return AgentStack.build(deny_rules=rules, qdrant_location=os.environ.get("CLOUDOPS_QDRANT_URL") or None,
                            db_url=os.environ.get("CLOUDOPS_METADATA_DB_URL") or None)


app = create_app(_factory)
