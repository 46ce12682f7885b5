"""How a ``cloudops`` process in another shell finds the simulated AWS that ``cloudops demo --serve`` keeps running.

The demo's accounts are AWS profiles (``prod``, ``staging``, ``dev``) that assume a role in moto; the files that
define them, with moto's throwaway keys, live in a private temporary folder that the demo removes when it stops.
While it serves, the demo writes ``$CLOUDOPS_HOME/simulated-aws.json`` naming that folder's two files, moto's
loopback URL and its own pid, and no key. Every ``cloudops`` command started with that CLOUDOPS_HOME reads it
(:func:`adopt`) and points its own AWS environment at those files, so ``cloudops run``, ``sync`` and the app work
on the demo estate in another shell without anyone exporting anything. A file whose demo has ended (its pid gone,
or moto no longer answering) is ignored and removed.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

FILE_NAME = "simulated-aws.json"
# The environment a demo's profiles need; nothing else is ever taken from the file.
_ENV_NAMES = ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")


def publish(home: Path, endpoint: str, env: dict[str, str]) -> Path:
    """Write the file (0600) that lets other ``cloudops`` processes on ``home`` use this demo's moto."""
    path = home / FILE_NAME
    body = {"pid": os.getpid(), "endpoint": endpoint, "env": {k: env[k] for k in _ENV_NAMES if k in env}}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(body, handle)
    os.replace(tmp, path)
    return path


def withdraw(home: Path) -> None:
    """Remove the file, if it is this process's (a later demo on the same home may have replaced it)."""
    path = home / FILE_NAME
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def running(home: Path) -> dict | None:
    """The serving demo's record, or None (no file, its process gone, moto not answering: then the stale
    file is removed)."""
    path = home / FILE_NAME
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        pid, endpoint, env = int(body["pid"]), str(body["endpoint"]), dict(body["env"])
    except (OSError, ValueError, KeyError, TypeError):  # none, or not one a demo wrote
        return None
    lent = all(k in _ENV_NAMES for k in env) and env.get("AWS_ENDPOINT_URL", endpoint) == endpoint
    if not (lent and _alive(pid) and _answers(endpoint)):
        try:
            path.unlink()
        except OSError:
            pass
        return None
    return {"pid": pid, "endpoint": endpoint, "env": env}


def adopt(home: Path) -> str | None:
    """Point this process's AWS environment at the serving demo's profiles; its moto URL, or None."""
    record = running(home)
    if record is None:
        return None
    os.environ.update(record["env"])
    return record["endpoint"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not ours to trust
        return False
    return True


def _answers(endpoint: str) -> bool:
    """moto still listens there (a pid can be reused; a port that answers on loopback is the demo's)."""
    url = urlparse(endpoint)
    if url.hostname not in ("127.0.0.1", "localhost") or not url.port:
        return False
    try:
        with socket.create_connection((url.hostname, url.port), timeout=0.5):
            return True
    except OSError:
        return False


def is_demo_estate(config) -> bool:
    """Whether ``config`` names exactly the demo's accounts (their profiles reach nothing once its simulated AWS
    has stopped, so failures there say to run `cloudops demo --serve`)."""
    from app.demo.demo_estate import DEMO_ACCOUNTS

    demo = {(a.name, a.profile, a.account_id) for a in DEMO_ACCOUNTS}
    return bool(config.accounts) and {(a.name, a.profile, a.account_id) for a in config.accounts} == demo
