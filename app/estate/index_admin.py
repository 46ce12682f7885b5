"""`cloudops index rebuild`: drop the estate index (resources.db and the Qdrant Edge folder under
``$CLOUDOPS_HOME/index``) and make it again from AWS with a full sync.

Why a separate path from sync: when resources.db or a file of the shard is damaged the store cannot even
be opened, so nothing that needs it can repair it. The index is a cache of AWS and can always be rebuilt;
approvals (state.db), the audit trail (audit.db), config.yaml and the agent cache live outside
``index/`` and are never touched here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from app.estate.index_errors import IndexUnavailable

INDEX_FILES = ("resources.db", "resources.db-wal", "resources.db-shm", "resources.db-journal", ".writing")
INDEX_FOLDERS = ("edge", "qdrant")  # the shard; the qdrant-client folder of indexes made before Edge


class RebuildRefused(IndexUnavailable):
    """Rebuilding now would pull the index from under a running process."""


def _assert_unlocked(folder: Path) -> None:
    """The process that owns the shard holds ``edge/.lock``; take and release the same lock so a rebuild
    never deletes a folder another sync is writing."""
    from app.estate.resource_store import folder_is_locked

    if folder.exists() and folder_is_locked(folder):
        raise RebuildRefused(f"{folder} is open in another CloudOps process (the app, or a sync); let it end, "
                             "then run `cloudops index rebuild` again")


def drop_index(home: Path) -> list[str]:
    """Delete the index's files (and only those); returns what was removed."""
    from app.interfaces.endpoint_client import AppEndpoint

    if AppEndpoint.discover(home) is not None:
        raise RebuildRefused("the CloudOps app is running and owns the index; quit it, then run "
                             "`cloudops index rebuild` again")
    index = home / "index"
    _assert_unlocked(index / "edge")
    removed = []
    for name in INDEX_FILES:
        path = index / name
        if path.exists():
            path.unlink()
            removed.append(str(path))
    for name in INDEX_FOLDERS:
        folder = index / name
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(str(folder))
    return removed


def rebuild_index(home: Path, progress=None) -> tuple[list[str], dict]:
    """Drop the index, then a full sync of every configured account: (removed paths, sync report)."""
    from app.estate.estate import Estate

    removed = drop_index(home)
    estate = Estate()
    try:
        estate.store.open()  # take the single-owner lock before any AWS call
        report = estate.engine().run(full=True, progress=progress)
    finally:
        estate.close()
    return removed, report.as_json()
