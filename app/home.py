"""Where the client keeps its state: ``CLOUDOPS_HOME``, else the platform's user data folder.

Everything under it is private to the user: approvals and the audit trail name resources and approval ids,
the index holds the whole estate. The folder is made 0700 (and tightened, with a one-line warning, when it
is looser), files are made 0600, and the process's umask is set to 077 the first time the home is opened,
so that what SQLite (its -wal and -shm files) and the embedded Qdrant create later is private too.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from platformdirs import user_data_dir

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_warned: set[Path] = set()
_checked: set[Path] = set()


def _private_umask() -> None:
    os.umask(0o077)


def cloudops_home() -> Path:
    env = os.environ.get("CLOUDOPS_HOME")
    home = Path(env).expanduser() if env else Path(user_data_dir("cloudops-agent", appauthor=False))
    _private_umask()
    home.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if home not in _checked:  # once per process: files an older version (or another umask) left readable
        _checked.add(home)
        _tighten(home, PRIVATE_DIR)
        for path in home.rglob("*"):
            if not path.is_symlink():
                _tighten(path, PRIVATE_DIR if path.is_dir() else PRIVATE_FILE, quiet=True)
    return home


def _tighten(path: Path, mode: int, quiet: bool = False) -> None:
    """Make ``path`` private if another user could read it, saying so once."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if current & 0o077:
        try:
            os.chmod(path, mode)
        except OSError:
            return
        if not quiet and path not in _warned:
            _warned.add(path)
            print(f"warning: {path} was readable by other users (mode {current:o}); made it {mode:o}",
                  file=sys.stderr)


def private_file(path: Path) -> Path:
    """``path`` created empty with mode 0600 if missing, else tightened to 0600 (with its folder 0700)."""
    _private_umask()
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    except OSError:
        return path  # unreadable or read-only: the caller's own open says so
    _tighten(path, PRIVATE_FILE)
    return path


def agent_cache_dir() -> Path:
    """The playbook index's metadata and vector cache (rebuildable: nothing here is precious)."""
    return cloudops_home() / "agent"


def policy_file() -> Path:
    return cloudops_home() / "policy.yaml"
