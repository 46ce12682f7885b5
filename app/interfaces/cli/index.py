"""`cloudops index ...` and the CLI's one rule for an index that cannot be opened.

``IndexAwareGroup`` turns IndexUnavailable (corrupt or locked resources.db or Qdrant folder), raised by
whichever command opened the index, into one sentence on stderr and exit 2: the message already names
the file and `cloudops index rebuild`, and a traceback would only hide it.
"""

from __future__ import annotations

import json
import sys

import click

from app.estate.index_errors import IndexUnavailable


class IndexAwareGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except IndexUnavailable as exc:
            click.echo(click.style("error: ", fg="red", bold=True) + str(exc), err=True)
            sys.exit(2)


@click.group(name="index")
def index() -> None:
    """The local estate index ($CLOUDOPS_HOME/index)."""


@index.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def rebuild(as_json: bool) -> None:
    """Drop resources.db and the Qdrant folder and rebuild them from AWS by a full sync. Approvals
    (state.db) and the audit trail (audit.db) are never touched. Exit 2 if a scope failed."""
    from app.home import cloudops_home
    from app.estate.index_admin import rebuild_index

    removed, report = rebuild_index(cloudops_home())
    if as_json:
        click.echo(json.dumps({"removed_files": removed, **report}, indent=2, default=str))
    else:
        click.echo(f"removed {len(removed)} index files; rebuilt {report['added']} documents from "
                   f"{len(report['scopes'])} scopes in {report['duration_s']:.1f}s")
        for err in report["errors"]:
            click.echo(click.style(f"  failed {err['scope']}: {err['error']}", fg="red"), err=True)
    sys.exit(0 if not report["errors"] else 2)
