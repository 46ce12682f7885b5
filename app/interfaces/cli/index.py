"""`cloudops index ...`: the local estate index ($CLOUDOPS_HOME/index)."""

from __future__ import annotations

import json
import sys

import click

from app.interfaces.cli.base import die


@click.group(name="index")
def index() -> None:
    """The local estate index ($CLOUDOPS_HOME/index)."""


@index.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--yes", is_flag=True, help="Do not ask first (needed where there is no terminal to ask on).")
def rebuild(as_json: bool, yes: bool) -> None:
    """Make the index again from AWS by a full sync, beside the current one, and swap it in only when it is
    complete: a failed or interrupted rebuild leaves the current index as it was. Checks first that the app is
    not running and that every account answers AWS; asks on a terminal (--yes skips). Approvals (state.db) and
    the audit trail (audit.db) are never touched. Exit 2 if a scope failed, 3 if not confirmed."""
    import signal

    from app.config import load_config
    from app.estate.index_admin import RebuildRefused, build, preflight
    from app.home import cloudops_home

    if not yes and not sys.stdin.isatty():
        die("`cloudops index rebuild` replaces the index and asks first, and there is no terminal to ask on: run it "
            "again with --yes (nothing was touched)", code=3)
    home, config = cloudops_home(), load_config()
    try:
        checked = preflight(home, config)
    except RebuildRefused as exc:
        die(str(exc))
    names = ", ".join(a.name for a in checked.accounts)
    current = ("the current index cannot be opened, so it is replaced" if checked.old_problem else
               f"the current index ({checked.documents} resources) stays in use until the new one is complete")
    if not yes:
        if not click.confirm(f"Rebuild the index from AWS ({len(checked.accounts)} account"
                             f"{'s' if len(checked.accounts) != 1 else ''}: {names})? {current[0].upper()}{current[1:]}.",
                             default=False, err=True):
            die("not confirmed; nothing was touched", code=3)

    def _interrupted(signum, frame):  # noqa: ARG001 - SIGTERM unwinds like Ctrl+C: the new store is deleted
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _interrupted)
    bar = None
    if not as_json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="scope", desc="rebuild", file=sys.stderr)
    try:
        outcome = build(checked, config, progress=(lambda r: bar.update(1)) if bar is not None else None)
    except KeyboardInterrupt:
        die("the rebuild was interrupted and its new index deleted; "
            + ("the old index is unchanged" if not checked.old_problem else "the old index is as it was (damaged)"),
            code=130)
    except RebuildRefused as exc:
        die(f"{exc}; the new index was discarded and the old one is unchanged")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if bar is not None:
            bar.close()
    report = outcome.report
    if as_json:
        click.echo(json.dumps(outcome.as_json(checked), indent=2, default=str))
    else:
        from app.estate.sync_failures import headline
        from app.interfaces.cli.estate import print_failures

        counts = (f"{headline(report)} ({report['duration_s']:.1f}s): {report['added']} resources")
        if outcome.replaced:
            click.echo(f"rebuilt the index at {home / 'index'}: {counts}"
                       + (f" (was {checked.documents})" if checked.documents is not None else ""))
        else:
            click.echo(click.style(f"kept the old index ({checked.documents} resources) because {outcome.kept_because}: "
                                   f"{counts}; fix what failed (below) and rebuild again, or `cloudops sync` to "
                                   "fill in only what failed", fg="yellow"))
        print_failures(report["errors"])
    sys.exit(0 if not report["errors"] else 2)
