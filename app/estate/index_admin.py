"""`cloudops index rebuild`: make the estate index again from AWS beside the old one, and swap only on success.

Why a separate path from sync: when a file of the index is damaged the store cannot even be opened, so nothing
that needs it can repair it. The index is a cache of AWS and can always be made again; approvals (state.db),
the audit trail (audit.db), config.yaml and the agent cache live outside ``index/`` and are never touched.

Nothing is lost on the way (issue 15, item 9). Before anything is touched (:func:`preflight`): the app must not
own the index, no other process may hold it, and every configured account must answer AWS (a rebuild on
credentials that reach nothing used to leave an empty index). Then a full sync writes a new store in
``index.rebuild/`` beside the live ``index/`` (:func:`build`), which stays readable the whole time. Only when the
new store is complete does it take the old one's place, in one atomic exchange of the two folders where the
system has one (Linux's renameat2 RENAME_EXCHANGE), so there is no moment without an index. A failed scope
keeps the old index (unless it could not be opened at all, or was empty: then the new, partial one is better);
an interruption (Ctrl+C, SIGTERM, an exception) deletes the half-made store and leaves the old one as it was; a
SIGKILL leaves ``index.rebuild/`` behind, which the next rebuild clears.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.estate.index_errors import IndexUnavailable

INDEX_NAME = "index"
BUILD_NAME = "index.rebuild"  # the new store while it is made
PREVIOUS_NAME = "index.previous"  # the old store for a moment, where folders cannot be exchanged atomically
LOCK_NAME = "index.rebuild.lock"


class RebuildRefused(IndexUnavailable):
    """Rebuilding now would pull the index from under a running process, or could not succeed; nothing was
    touched. The message is one sentence saying why and what to do."""


@dataclass
class Preflight:
    """What the checks found, before anything was touched."""

    home: Path
    accounts: list  # the effective AccountConfig list
    documents: int | None  # in the live index; None when it could not be opened
    old_problem: str | None  # why the live index could not be opened (then any new index is better)


@dataclass
class Outcome:
    replaced: bool
    report: dict  # the new store's full-sync report (SyncReport.as_json())
    kept_because: str | None = None  # why the old index was kept

    def as_json(self, preflight: Preflight) -> dict:
        return {"replaced": self.replaced, "index": str(preflight.home / INDEX_NAME),
                "previous_documents": preflight.documents, "kept_because": self.kept_because, **self.report}


def _app_refusal(home: Path) -> RebuildRefused | None:
    from app.interfaces.endpoint_client import AppEndpoint

    if AppEndpoint.discover(home) is not None:
        return RebuildRefused("the CloudOps app is running and owns the index; quit it, then run "
                              "`cloudops index rebuild` again (nothing was touched)")
    return None


def preflight(home: Path, config) -> Preflight:
    """Every reason not to rebuild, checked before anything is touched (raises RebuildRefused naming it):
    the app owns the index; an account cannot be reached; another process holds the index."""
    from app.estate.resource_store import IndexBusy, ResourceStore

    refusal = _app_refusal(home)
    if refusal:
        raise refusal
    accounts = config.effective_accounts()
    from app.demo.simulated_aws import is_demo_estate
    from app.estate.sync_failures import unreached_sentence, unreachable_accounts

    failures = unreachable_accounts(accounts)
    if failures:
        raise RebuildRefused(f"nothing was rebuilt and the index was not touched, because "
                             f"{unreached_sentence(failures, demo=is_demo_estate(config))}")
    documents, old_problem = None, None
    if (home / INDEX_NAME).exists():  # opened through the store, as any command opens it: busy, damaged or fine
        store = None
        try:
            store = ResourceStore(home / INDEX_NAME)
            store.open()
            documents = store.count()
        except IndexBusy as exc:
            raise RebuildRefused(f"{exc} (nothing was touched)") from None
        except IndexUnavailable as exc:  # damaged: what the rebuild is for
            old_problem = str(exc)
        finally:
            if store is not None:
                store.close()
    else:
        documents = 0
    return Preflight(home, accounts, documents, old_problem)


@contextmanager
def _rebuild_lock(home: Path):
    """One rebuild per folder at a time (a second one would delete the first one's half-made store)."""
    import portalocker

    handle = open(home / LOCK_NAME, "a+")
    try:
        portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
    except portalocker.exceptions.LockException:
        handle.close()
        raise RebuildRefused("another `cloudops index rebuild` is running for this folder; let it end") from None
    try:
        yield
    finally:
        portalocker.unlock(handle)
        handle.close()


def _recover(home: Path) -> None:
    """Undo what a rebuild killed mid-way left: a half-made store, or (where folders cannot be exchanged
    atomically) the old index moved aside with no new one in its place."""
    live, previous = home / INDEX_NAME, home / PREVIOUS_NAME
    if previous.exists():
        if live.exists():
            shutil.rmtree(previous, ignore_errors=True)
        else:
            previous.rename(live)
    shutil.rmtree(home / BUILD_NAME, ignore_errors=True)


def _embed(config) -> Callable:
    """The embedding function, chosen as Estate.embedder chooses it (the agent server's, or the local model)."""
    if config.embed_via_server and config.server_url:
        from app.estate.estate import RemoteEmbedder

        return RemoteEmbedder(config.server_url).encode
    from agent.embeddings import shared_embedder

    return shared_embedder().encode


def build(checked: Preflight, config, progress=None) -> Outcome:
    """A full sync into a new store beside the live index, swapped in when it is complete (see the module's
    docstring). Any exception, KeyboardInterrupt included, deletes the new store and leaves the old index as
    it was before it propagates."""
    from app.awsclient import SessionPool
    from app.estate.estate import TEAM_QDRANT_ENV
    from app.estate.resource_store import ResourceStore
    from app.estate.sync import SyncEngine

    home = checked.home
    with _rebuild_lock(home):
        _recover(home)
        target = home / BUILD_NAME
        store = ResourceStore(target, qdrant_location=os.environ.get(TEAM_QDRANT_ENV) or None)  # as Estate opens it
        try:
            try:
                store.open()
                engine = SyncEngine(store, _embed(config), checked.accounts, pool=SessionPool())
                report = engine.run(full=True, progress=progress)
            finally:
                store.close()
            data = report.as_json()
            kept = _keep_old_because(checked, report.ok)
            if kept is None:
                refusal = _app_refusal(home)  # the app may have started while the new store was made
                if refusal:
                    raise refusal
                _swap(home)
                return Outcome(True, data)
            return Outcome(False, data, kept)
        finally:
            shutil.rmtree(target, ignore_errors=True)  # the half-made or refused store, or after the swap the old one


def _keep_old_because(checked: Preflight, ok: bool) -> str | None:
    if ok:
        return None
    if checked.old_problem is not None or not checked.documents:
        return None  # the old index cannot be opened, or is empty: a partial new one is better
    return "some scopes failed, so the new index would be incomplete"


def _swap(home: Path) -> None:
    """Put the new store in the live index's place: afterwards ``index/`` is the new store and ``index.rebuild/``
    the old one (deleted by the caller)."""
    live, new = home / INDEX_NAME, home / BUILD_NAME
    if not live.exists():
        new.rename(live)
        return
    if _exchange(new, live):
        return
    previous = home / PREVIOUS_NAME  # two renames; a kill between them is undone by _recover
    live.rename(previous)
    new.rename(live)
    previous.rename(new)


def _exchange(a: Path, b: Path) -> bool:
    """Exchange two folders atomically (Linux renameat2 with RENAME_EXCHANGE); False where the system or its
    file system has no such call, so the caller falls back to two renames."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    rename_exchange, at_fdcwd = 2, -100
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    import errno

    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))
