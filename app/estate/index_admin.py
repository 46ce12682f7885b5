"""`cloudops index rebuild`: drop the estate index (resources.db and the Qdrant folder under
``$CLOUDOPS_HOME/index``) and make it again from AWS with a full sync.

Why a separate path from sync: when resources.db or a Qdrant file is damaged the store cannot even be
opened, so nothing that needs it can repair it. The index is a cache of AWS and can always be rebuilt;
approvals (state.db), the audit trail (audit.db), config.yaml and the agent cache live outside
``index/`` and are never touched here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from app.estate.index_errors import IndexUnavailable

INDEX_FILES = ("resources.db", "resources.db-wal", "resources.db-shm", "resources.db-journal", ".writing")


class RebuildRefused(IndexUnavailable):
    """Rebuilding now would pull the index from under a running process."""


def _assert_qdrant_unlocked(folder: Path) -> None:
    """Embedded Qdrant holds an exclusive lock on ``qdrant/.lock`` while a process has it open; take and
    release the same lock so a rebuild never deletes a folder another sync is writing."""
    lock_path = folder / ".lock"
    if not lock_path.exists():
        return
    import portalocker

    with open(lock_path, "r+") as handle:
        try:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.exceptions.LockException:
            raise RebuildRefused(f"{folder} is open in another CloudOps process (the app, or a sync); let it end, "
                                 "then run `cloudops index rebuild` again") from None
        portalocker.unlock(handle)


def drop_index(home: Path) -> list[str]:
    """Delete the index's files (and only those); returns what was removed."""
    from app.interfaces.endpoint_client import AppEndpoint

    if AppEndpoint.discover(home) is not None:
        raise RebuildRefused("the CloudOps app is running and owns the index; quit it, then run "
                             "`cloudops index rebuild` again")
    index = home / "index"
    qdrant = index / "qdrant"
    _assert_qdrant_unlocked(qdrant)
    removed = []
    for name in INDEX_FILES:
        path = index / name
        if path.exists():
            path.unlink()
            removed.append(str(path))
    if qdrant.exists():
        shutil.rmtree(qdrant)
        removed.append(str(qdrant))
    return removed


def rebuild_index(home: Path, progress=None) -> tuple[list[str], dict]:
    """Drop the index, then a full sync of every configured account: (removed paths, sync report)."""
    from app.estate.estate import Estate

    removed = drop_index(home)
    estate = Estate()
    try:
        estate.store.qdrant  # noqa: B018 - take the single-writer lock before any AWS call
        report = estate.engine().run(full=True, progress=progress)
    finally:
        estate.close()
    return removed, report.as_json()
