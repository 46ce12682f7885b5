"""The ``cloudops`` group and what every command shares: one way to fail (a sentence, exit 2), the
local agent stack, the estate. Heavy modules (the embedding model, qdrant) are imported inside the
commands that need them, so ``cloudops --version`` and ``--help`` stay instant.

One way to fail, for every command (``OneSentenceGroup``): before a command that keeps state runs, its
folder (CLOUDOPS_HOME) must be one this process can read and write, and config.yaml must parse; otherwise
one sentence names the folder or the file's line and field and what to do, and nothing is touched. What a
command raises later for the same reasons (a corrupt or locked index, a file under the folder it may not
open) becomes one sentence too: a traceback would only hide the file's name.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import click

from agent import __version__
from app.estate.index_errors import IndexUnavailable

# Commands that keep state under CLOUDOPS_HOME (the index, approvals, the audit trail) and those that
# read config.yaml. The others (server, playbooks, schema, eval) have neither.
HOME_COMMANDS = frozenset({"plan", "run", "app", "accounts", "sync", "search", "status", "audit", "index", "demo"})
CONFIG_COMMANDS = HOME_COMMANDS - {"audit", "demo"}  # the demo checks the config of its own folder
_FOLDER_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENOSPC, errno.EDQUOT}


def die(message: str, code: int = 2) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


def home_folder(for_command: str | None = None) -> Path:
    """The folder a command keeps its state in, found as app.home finds it but without creating it: the
    demo's own folder for ``demo``, else CLOUDOPS_HOME or the platform's user data folder."""
    if for_command == "demo":
        from app.demo.demo import demo_home

        return demo_home()
    env = os.environ.get("CLOUDOPS_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("cloudops-agent", appauthor=False))


def _named(home: Path) -> str:
    return f"CLOUDOPS_HOME ({home})" if os.environ.get("CLOUDOPS_HOME") else f"the CloudOps folder {home}"


def home_problem(home: Path) -> str | None:
    """Why ``home`` cannot hold CloudOps's state, in one sentence, or None. Checked by doing: root passes
    every permission check except a read-only file system, so asking os.access would not be enough."""
    import tempfile

    fix = (f"CloudOps keeps its index, approvals and audit trail there, so make it a folder you can read and write "
           f"(chmod u+rwx {home}) or point CLOUDOPS_HOME at one")
    if home.exists() and not home.is_dir():
        return f"{_named(home)} is a file, not a folder: move the file away or point CLOUDOPS_HOME at a folder"
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        return f"{_named(home)} cannot be created ({exc.strerror or type(exc).__name__}): {fix}"
    try:
        os.listdir(home)
    except OSError as exc:
        return f"{_named(home)} cannot be read ({exc.strerror or type(exc).__name__}): {fix}"
    try:
        fd, probe = tempfile.mkstemp(dir=home, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return (f"{_named(home)} is on a read-only file system: CloudOps keeps its index, approvals and audit "
                    "trail there, so point CLOUDOPS_HOME at a folder on a writable one")
        return f"{_named(home)} cannot be written ({exc.strerror or type(exc).__name__}): {fix}"
    return None


def prepare(command: str) -> None:
    """What must hold before ``command`` runs (see the module's docstring); dies with the sentence if not.
    A demo serving its simulated AWS for this folder (``cloudops demo --serve``) lends its AWS profiles."""
    if command not in HOME_COMMANDS:
        return
    home = home_folder(command)
    problem = home_problem(home)
    if problem:
        die(problem)
    if command in CONFIG_COMMANDS:
        from app.config import ConfigError, load_config

        try:
            load_config()
        except ConfigError as exc:
            die(str(exc))
    if command != "demo":
        from app.demo import simulated_aws

        simulated_aws.adopt(home)


class OneSentenceGroup(click.Group):
    """The ``cloudops`` group: :func:`prepare` before each command, and the failures every command can meet
    turned into one sentence on stderr and exit 2 (IndexUnavailable already names the file and
    `cloudops index rebuild`)."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and "--help" not in rest:
            prepare(command.name)
        return name, command, rest

    def invoke(self, ctx: click.Context):
        from app.config import ConfigError

        try:
            return super().invoke(ctx)
        except (IndexUnavailable, ConfigError) as exc:
            die(str(exc))
        except OSError as exc:
            if exc.errno not in _FOLDER_ERRNOS or not exc.filename:
                raise
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                die(f"{exc.filename} cannot be written ({exc.strerror}): free some space on that disk, or point "
                    "CLOUDOPS_HOME at a folder on another one")
            die(f"{exc.filename} cannot be used ({exc.strerror}): {_folder_advice()}")
        except Exception as exc:  # noqa: BLE001 - only SQLite's "cannot open/write the file" is translated
            sentence = _sqlite_file_problem(exc)
            if sentence is None:
                raise
            die(sentence)


def _folder_advice() -> str:
    home = home_folder()
    return (f"every file under {_named(home)} must be yours to read and write (chmod -R u+rwX {home}), or point "
            "CLOUDOPS_HOME at another folder")


def _sqlite_file_problem(exc: BaseException) -> str | None:
    """SQLite cannot open or write a database file under the home (permissions, a read-only file system):
    the sentence to say, or None for any other error. SQLAlchemy wraps sqlite3's error in ``.orig``."""
    import sqlite3

    original = getattr(exc, "orig", exc)
    if not isinstance(original, sqlite3.OperationalError):
        return None
    message = str(original)
    if not any(text in message for text in ("unable to open database file", "readonly database", "disk I/O error")):
        return None
    return f"a database under {_named(home_folder())} cannot be opened or written ({message}): {_folder_advice()}"


def local_stack(playbook_dir: Path | None = None, policy: Path | None = None):
    from agent.planner import AgentStack
    from agent.playbook import PlaybookError
    from agent.policy import PolicyError, load_deny_rules
    from app.home import agent_cache_dir, policy_file

    from agent.llm import GapFiller

    try:
        rules = load_deny_rules(policy or policy_file())
        stack = AgentStack.build(playbook_dir, cache_dir=agent_cache_dir(), deny_rules=rules)
    except (PlaybookError, PolicyError) as exc:
        die(str(exc))
    stack.gap_filler = GapFiller.available()  # the offline model, loaded only if a gap needs it
    return stack


@click.group(invoke_without_command=True, cls=OneSentenceGroup)
@click.version_option(__version__, prog_name="cloudops")
@click.pass_context
def main(ctx: click.Context) -> None:
    """CloudOps Agent: plain-language AWS requests in, exact risk-assessed plans out.

    With no command: the desktop app (tray, windows, local endpoint), like `cloudops app`; where there is
    no desktop (no display, GUI packages missing) this help instead of a headless server nobody asked for."""
    if ctx.invoked_subcommand is None:
        from app.desktop.shell import DesktopUnavailable, check_available

        try:
            check_available()
        except DesktopUnavailable as exc:
            click.echo(ctx.get_help())
            click.echo(f"\n(no desktop: {exc}; `cloudops app --headless` runs the local endpoint alone)")
            return
        prepare("app")
        ctx.invoke(main.get_command(ctx, "app"), headless=False, port=0)  # registered by cli/serving.py


def open_estate():
    from app.config import ConfigError
    from app.estate.estate import Estate

    try:
        return Estate()
    except ConfigError as exc:
        die(str(exc))
