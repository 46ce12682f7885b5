"""``cloudops audit``, ``playbooks``, ``schema``, ``eval`` and ``demo``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from app.interfaces.cli.base import die, local_stack, main


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
def audit(as_json: bool, limit: int) -> None:
    """The local audit trail, newest first."""
    from app.execution.audit import AuditTrail
    from app.home import cloudops_home

    trail = AuditTrail(cloudops_home() / "audit.db")
    events = [e.model_dump(mode="json") for e in trail.events(limit)]
    trail.close()
    if as_json:
        click.echo(json.dumps(events, indent=2))
        return
    if not events:
        click.echo("no events yet: plans, approvals and runs are recorded here as they happen")
    for e in events:
        click.echo(f"{e['at']}  {e['kind']:<8} {e['operation'] or '':<22} {e['outcome'] or ''} "
                   f"{e['prompt'] or ''} {e['detail'] or ''}".rstrip())


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--dir", "playbook_dir", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option("--all", "everything", is_flag=True, help="Also list the operation catalogue: every API call of the "
              "13 estate services, generated from the installed botocore (what GET /v1/operations serves).")
@click.option("--service", default=None, help="With --all: only this service's operations (e.g. rds).")
def playbooks(as_json: bool, playbook_dir: Path | None, everything: bool, service: str | None) -> None:
    """Validate and list the playbooks (exit 2 naming the file and field of the first bad one)."""
    from agent.playbook import PlaybookError, default_playbook_dir, load_playbooks

    try:
        loaded = load_playbooks(playbook_dir or default_playbook_dir())
    except PlaybookError as exc:
        die(str(exc))
    rows = [{"id": lp.playbook.id, "service": lp.playbook.service, "operation": lp.playbook.main_operation,
             "read_only": lp.playbook.read_only, "title": lp.playbook.title} for lp in loaded]
    operations = _catalogue_rows(loaded, service) if everything else []
    if everything and service and not operations:
        die(f"no operations for service {service!r}; the catalogue covers ec2, rds, s3, lambda, dynamodb, ecs, "
            "elbv2, autoscaling, sqs, sns, eks, cloudformation, iam")
    if as_json:
        click.echo(json.dumps({"playbooks": rows, "operations": operations} if everything else rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['id']:<44} {row['operation']:<28} {'read-only' if row['read_only'] else 'mutating'}")
    click.echo(f"{len(rows)} playbooks valid")
    if everything:
        for op in operations:
            reviewed = ("reviewed: " + ", ".join(op["reviewed_by"])) if op["reviewed_by"] else "generated"
            click.echo(f"{op['id']:<58} {op['access']:<26} {'approval' if op['approval'] else 'no approval':<11} "
                       f"{reviewed}")
        click.echo(f"{len(operations)} operations in the catalogue (botocore's models of the estate's services)")


def _catalogue_rows(loaded, service: str | None) -> list[dict]:
    """The catalogue as ``GET /v1/operations`` lists it: built from the installed botocore (no model needed)."""
    from agent.catalogue import build_entries

    covering: dict[str, list[str]] = {}
    for lp in loaded:
        for step in lp.playbook.steps:
            covering.setdefault(f"{lp.playbook.step_service(step)}.{step.operation}", []).append(lp.playbook.id)
    return [e.row(covering.get(e.id, [])) for e in build_entries() if service is None or e.service == service]


@main.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("docs/protocol"), show_default=True)
def schema(out: Path) -> None:
    """Write the protocol's JSON Schemas."""
    from agent.protocol import json_schemas

    out.mkdir(parents=True, exist_ok=True)
    for name, body in json_schemas().items():
        (out / name).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        click.echo(f"wrote {out / name}")


@main.command(name="eval")
@click.option("--cases", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of the set (default: tests/eval, tests/eval_e2e with --e2e, tests/eval_catalogue with "
                   "--catalogue).")
@click.option("--e2e", is_flag=True, help="End to end: sync the demo estate from moto, then look up and plan "
              "every prompt of the set's cases.yaml.")
@click.option("--catalogue", is_flag=True, help="The operation catalogue's set: right operation, another (mutating) "
              "operation chosen, abstained of the impossible.")
def evaluate(cases: Path | None, e2e: bool, catalogue: bool) -> None:
    """Run an evaluation set and print accuracy and its reliability table (confidence bucket -> accuracy)."""
    if e2e and catalogue:
        die("--e2e and --catalogue are two different sets: choose one")
    if cases is not None and not cases.is_dir():
        die(f"--cases {cases}: no such folder")
    if e2e:
        from app.demo.e2e_eval import run_e2e

        report = run_e2e((cases or Path("tests/eval_e2e")) / "cases.yaml", local_stack)
    elif catalogue:
        from agent.catalogue_eval import run as run_catalogue

        report = run_catalogue(local_stack().planner("local"), cases or Path("tests/eval_catalogue"))
    else:
        from agent.evaluation import run

        report = run(local_stack().planner("local"), cases or Path("tests/eval"))
    click.echo(report.summary())


@main.command()
@click.option("--serve", is_flag=True, help="Keep the simulated AWS running afterwards (until Ctrl+C), so that "
              "`cloudops run`, `sync` and the app work on the demo estate from another shell with the same "
              "CLOUDOPS_HOME.")
def demo(serve: bool) -> None:
    """Start moto on loopback, create a three-account demo estate, sync it, search it and plan requests."""
    from app.demo.demo import DemoRefused, run_demo

    try:
        sys.exit(run_demo(local_stack, serve=serve))
    except DemoRefused as exc:
        die(str(exc))
