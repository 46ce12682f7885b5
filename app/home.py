"""Where the client keeps its state: ``CLOUDOPS_HOME``, else the platform's user data folder."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir


def cloudops_home() -> Path:
    env = os.environ.get("CLOUDOPS_HOME")
    home = Path(env).expanduser() if env else Path(user_data_dir("cloudops-agent", appauthor=False))
    home.mkdir(parents=True, exist_ok=True)
    return home


def agent_cache_dir() -> Path:
    """The playbook index's metadata and vector cache (rebuildable: nothing here is precious)."""
    return cloudops_home() / "agent"


def policy_file() -> Path:
    return cloudops_home() / "policy.yaml"
