"""``cloudops sync``, ``search`` and ``status``: the local estate index."""

from __future__ import annotations

import json
import sys

import click

from app.interfaces.cli.base import die, main, open_estate


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a progress bar.")
@click.option("--full", is_flag=True, help="Read every detail again (default: incremental, details only for new "
              "resources) and rewrite unchanged documents into the collection (repair).")
@click.option("--account", default=None, help="Only this account (name or id).")
@click.option("--region", default=None, help="Only this region.")
@click.option("--service", default=None, help="Only this service (ec2, rds, s3, ...).")
@click.option("--events", is_flag=True, help="Sync only the scopes named by resource-change events waiting in the "
              "configured events queue (config.yaml: events.queue_url, events.account).")
def sync(as_json: bool, full: bool, account: str | None, region: str | None, service: str | None, events: bool) -> None:
    """Sync the estate of the configured accounts into the local index. Exit 2 if any scope failed."""
    from app.estate.collectors import COLLECTORS

    if service and service not in COLLECTORS:
        die(f"unknown service {service!r}; known: {', '.join(sorted(COLLECTORS))}")
    from app.interfaces.endpoint_client import AppEndpoint, EndpointError
    from app.home import cloudops_home
    from app.estate.resource_store import IndexBusy

    running = AppEndpoint.discover(cloudops_home())
    if running is not None:
        if events:
            die("the app is running and owns the index: it syncs from the events queue on its schedule; "
                 "quit it to run `cloudops sync --events` here")
        try:
            data = running.sync(full, account, region, service)
        except (EndpointError, OSError) as exc:
            die(f"sync through the running app failed: {exc}")
        _print_sync(data, as_json, via=running.url)
        sys.exit(0 if not data["errors"] else 2)
    estate = open_estate()
    try:
        estate.store.qdrant  # noqa: B018 - take the index's single-writer lock now, before any AWS call
    except IndexBusy as exc:
        estate.close()
        die(str(exc))
    engine = estate.engine()
    if events:
        report = _sync_events(estate, engine)
        estate.close()
        click.echo(json.dumps(report.as_json(), indent=2, default=str) if as_json else
                   f"events named {len(report.scopes)} scopes; synced in {report.duration_s:.1f}s")
        sys.exit(0 if report.ok else 2)
    bar = None
    if not as_json and sys.stderr.isatty():
        from tqdm import tqdm

        planned, _ = engine.scopes(account, region, service)
        bar = tqdm(total=len(planned), unit="scope", desc="sync", file=sys.stderr)
    try:
        report = engine.run(account=account, region=region, service=service, full=full,
                            progress=(lambda r: bar.update(1)) if bar else None)
    finally:  # also when the index fails under it: the Qdrant folder is closed, its lock released
        if bar:
            bar.close()
        estate.close()
    _print_sync(report.as_json(), as_json)
    sys.exit(0 if report.ok else 2)


def _print_sync(data: dict, as_json: bool, via: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    from app.estate.sync_failures import headline

    where = f" (through the running app at {via})" if via else ""
    click.echo(f"{headline(data)} ({data['duration_s']:.1f}s{where}): +{data['added']} "
               f"~{data['updated']} -{data['removed']} ={data['unchanged']} (embedded {data['embedded']})")
    print_failures(data["errors"])


def print_failures(errors: list[dict]) -> None:
    """A sync's failures on stderr, one sentence per failing account and region (not one line per scope)."""
    if not errors:
        return
    from app.config import load_config
    from app.demo.simulated_aws import is_demo_estate
    from app.estate.sync_failures import failure_sentences

    config = load_config()
    profiles = {a.name: a.profile for a in config.effective_accounts()}
    for line in failure_sentences(errors, profiles, demo=is_demo_estate(config)):
        click.echo(click.style(f"  {line}", fg="red"), err=True)


def _sync_events(estate, engine):
    from botocore.exceptions import BotoCoreError, ClientError

    from app.awsclient import describe_error
    from app.estate.events import EventsUnavailable, drain_configured

    try:
        refs = drain_configured(estate.config, estate.sessions)  # the sessions the engine syncs with
    except EventsUnavailable as exc:
        estate.close()
        die(str(exc))
    except (ClientError, BotoCoreError) as exc:
        estate.close()
        die(f"reading the events queue {estate.config.events.queue_url} failed: {describe_error(exc)}")
    return engine.run_events(refs)


@main.command()
@click.argument("query")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--account", default=None, help="Only this account (name or id).")
@click.option("--type", "resource_type", default=None, help="Only this resource type (e.g. rds_db_instance).")
def search(query: str, as_json: bool, limit: int, account: str | None, resource_type: str | None) -> None:
    """Search the local estate: ids, names (fuzzy), words, meaning, tag expressions, hints."""
    from agent.protocol import canonical_resource_type
    from app.estate.lookup import QueryError

    if resource_type:
        try:
            resource_type = canonical_resource_type(resource_type)
        except ValueError as exc:
            die(str(exc))
    from app.interfaces.endpoint_client import AppEndpoint, EndpointError
    from app.home import cloudops_home

    running = AppEndpoint.discover(cloudops_home())
    if running is not None:
        try:
            rows, notes = running.search_with_notes(query, limit, account, resource_type)
        except (EndpointError, OSError) as exc:
            die(str(exc))
    else:
        from app.estate.lookup import hit_rows

        estate = open_estate()
        index = estate.lookup()
        try:
            result = index.search_result(query, limit=limit, account=account, resource_type=resource_type)
        except QueryError as exc:
            die(str(exc))
        rows, notes = hit_rows(result, estate.store), result.notes
        estate.close()
    if as_json:  # the hits on stdout; the notes (no such region, semantic results partial) on stderr
        click.echo(json.dumps(rows, indent=2, default=str))
        for note in notes:
            click.echo(f"note: {note}", err=True)
        return
    if not rows:
        click.echo("no match" + (f": {notes[0]}" if notes else ""))
        notes = notes[1:]
    for row in rows:
        click.echo(f"{row['score']:.2f}  {row['name']:<32} {row['resource_type']:<22} {row['account_name']}/{row['region']}"
                   f"  {row['state'] or ''}  ({'; '.join(row['why'])})")
    for note in notes:
        click.echo(f"note: {note}")


@main.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Sync status per account / region / service."""
    from app.estate.sync_status import StatusBook

    estate = open_estate()
    rows = [s.model_dump(mode="json") for s in StatusBook(estate.store.engine).all()]
    total = estate.store.synced_count()  # SQLite only: works while the app owns the index
    estate.close()
    if as_json:
        click.echo(json.dumps({"documents": total, "scopes": rows}, indent=2))
        return
    click.echo(f"{total} resources indexed")
    for row in rows:
        state = click.style("error", fg="red") if row["last_error"] else click.style("ok", fg="green")
        click.echo(f"  {row['account_name']:<14} {row['region']:<14} {row['service']:<15} {state:<5} "
                   f"{row['count']:>6}  last success {row['last_success'] or 'never'}"
                   + (f"  ({row['last_error']})" if row["last_error"] else ""))
