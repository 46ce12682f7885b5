"""The ``cloudops`` group and what every command shares: one way to fail (a sentence, exit 2), the
local agent stack, the estate. Heavy modules (the embedding model, qdrant) are imported inside the
commands that need them, so ``cloudops --version`` and ``--help`` stay instant."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agent import __version__
from app.interfaces.cli.index import IndexAwareGroup


def die(message: str, code: int = 2) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


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


@click.group(invoke_without_command=True, cls=IndexAwareGroup)
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
        ctx.invoke(main.get_command(ctx, "app"), headless=False, port=0)  # registered by cli/serving.py


def open_estate():
    from app.config import ConfigError
    from app.estate.estate import Estate

    try:
        return Estate()
    except ConfigError as exc:
        die(str(exc))
