"""``cloudops plan`` and ``cloudops run``: plan a prompt; approve and run it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from app.interfaces.cli.base import die, local_stack, main


@main.command()
@click.argument("prompt")
@click.option("--json", "as_json", is_flag=True, help="Print the PlanResponse as JSON.")
@click.option("--resources", "resources_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="JSON file: a list of identified resources (or a whole PlanRequest without the prompt).")
@click.option("--server", "server_url", default=None, help="Agent server URL (default: config.yaml's server_url); "
              "falls back to the local stack.")
@click.option("--offline", is_flag=True, help="Always use the local agent stack.")
def plan(prompt: str, as_json: bool, resources_file: Path | None, server_url: str | None, offline: bool) -> None:
    """Plan PROMPT: resources from --resources, or looked up in the local index (through the running
    app when there is one: it owns the index while it runs)."""
    from app.interfaces.render import render_plan
    from app.execution.runner import open_runner

    runner = open_runner(local_stack)
    try:
        response = _plan(runner, prompt, resources_file, offline, server_url)
    finally:
        runner.close()
    click.echo(response.model_dump_json(indent=2) if as_json else render_plan(response))


def _plan(runner, prompt: str, resources_file: Path | None, offline: bool, server_url: str | None):
    """The runner's plan, with every refusal turned into one clear line (exit 2)."""
    from pydantic import ValidationError

    from agent.protocol import describe_validation
    from app.interfaces.endpoint_client import EndpointError

    try:
        return runner.plan(_file_request(prompt, resources_file), prompt, offline, server_url)
    except ValidationError as exc:
        die("invalid request: " + describe_validation(exc))
    except EndpointError as exc:
        die(f"the running app refused the request: {exc}")
    except OSError as exc:
        die(str(exc))


def _file_request(prompt: str, resources_file: Path | None):
    """The PlanRequest from ``--resources`` (identified resources or a whole request), else None."""
    from pydantic import ValidationError

    from agent.protocol import PlanRequest, describe_validation

    if resources_file is None:
        return None
    try:
        data = json.loads(resources_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        die(f"{resources_file}: {exc}")
    body = data if isinstance(data, dict) else {"identified_resources": data}
    try:
        return PlanRequest.model_validate({**body, "prompt": prompt})
    except ValidationError as exc:
        die("invalid request: " + describe_validation(exc))


@main.command(name="run")
@click.argument("prompt")
@click.option("--approve", is_flag=True, help="Approve without asking. A critical plan or a change to production "
              "also needs --confirm with the name the plan asks for.")
@click.option("--confirm", "confirm", default=None, metavar="NAME",
              help="The name a critical or production plan asks to have typed (its target, or its account for "
                   "several targets); with --approve.")
@click.option("--stale-ok", is_flag=True, help="With --approve: approve although the data the plan was made on may "
              "be out of date (its scope failed its last sync or is older than the full-sync interval).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--resources", "resources_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--server", "server_url", default=None)
@click.option("--offline", is_flag=True)
def run_command(prompt: str, approve: bool, confirm: str | None, stale_ok: bool, as_json: bool,
                resources_file: Path | None, server_url: str | None, offline: bool) -> None:
    """Plan PROMPT, ask for approval (or --approve), run it, report. Exit 3 when nothing ran (not approved,
    a question to answer, denied by policy, already ran), saying why; 1 when a step failed."""
    from app.execution.runner import open_runner

    runner = open_runner(local_stack)
    try:
        code, result = _run(runner, prompt, resources_file, offline, server_url, approve, confirm, stale_ok, as_json)
    finally:
        runner.close()
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    sys.exit(code)


def _say(as_json: bool, line: str, **style) -> None:
    if not as_json:
        click.echo(click.style(line, **style) if style else line)


def _run(runner, prompt: str, resources_file: Path | None, offline: bool, server_url: str | None, approve: bool,
         confirm: str | None, stale_ok: bool, as_json: bool) -> tuple[int, dict]:
    """Plan, approve, execute; (exit code, the JSON result). Every way of not running says why."""
    from app.execution.report import render_report
    from app.execution.runner import NotRun
    from app.interfaces.render import render_plan

    plan = _plan(runner, prompt, resources_file, offline, server_url)
    _say(as_json, render_plan(plan))
    result: dict = {"plan": plan.model_dump(mode="json"), "executed": False}
    if plan.clarification:
        result["why_not_run"] = "the plan asks a question first"
        _say(as_json, "Nothing ran: answer the question above and ask again.", fg="yellow")
        return 3, result
    if not plan.script.steps:
        return 0, result
    if plan.risk_assessment.denied:
        result["why_not_run"] = "denied by policy"
        _say(as_json, "Nothing ran: a deny rule forbids this plan.", fg="red")
        runner.deny(plan, "denied by policy")
        return 3, result
    approval_id = None
    if plan.approval_required:
        try:  # shown before the question: where the API has DryRun, AWS says now whether the call would pass
            checks = runner.dry_run(plan)
        except NotRun as exc:
            checks = {s.step_id: f"dry run not possible: {exc}" for s in plan.script.steps}
        result["dry_run"] = checks
        for step_id, verdict in checks.items():
            if verdict not in ("read-only", "no dry run for this API"):
                _say(as_json, f"  dry run {step_id}: {verdict}")
        needed = plan.confirmation
        if not approve:
            if not sys.stdin.isatty() or as_json:
                why = ("this plan needs approval and there is no terminal to ask on: run it on a terminal, or pass "
                       "--approve" + (f" --confirm {needed.phrase!r}" if needed and needed.phrase else "")
                       + (" --stale-ok" if needed and needed.stale else ""))
                runner.deny(plan, "not approved (no terminal, no --approve)")
                result["why_not_run"] = why
                click.echo(click.style("Nothing ran: " + why, fg="yellow"), err=True)
                return 3, result
            confirm, stale_ok, approved = _ask(needed)
            if not approved:
                runner.deny(plan, "not approved")
                result["why_not_run"] = "not approved"
                _say(as_json, "Nothing ran: not approved.")
                return 3, result
        try:
            approval_id = runner.approve(plan, confirm, stale_ok)
        except NotRun as exc:
            result.update(why_not_run=str(exc), error=str(exc))
            click.echo(click.style(f"Nothing ran: {exc}", fg="red"), err=True)
            return 3, result
    try:
        report = runner.execute(plan, approval_id)
    except NotRun as exc:
        result.update(why_not_run=str(exc), error=str(exc))
        click.echo(click.style(f"Nothing ran: {exc}", fg="red"), err=True)
        return 3, result
    result.update(executed=True, **report.as_json())
    _say(as_json, render_report(report))
    return (0 if report.ok else 1), result


def _ask(needed) -> tuple[str | None, bool, bool]:
    """On a terminal: the typed name for a critical or production plan, else a yes/no; then an
    acknowledgement if the data may be out of date. Returns (typed name, stale acknowledged, approved)."""
    typed = None
    if needed and needed.phrase:
        typed = click.prompt(f"Type {needed.phrase!r} to approve ({'; '.join(needed.reasons)}), or press Enter to "
                             "cancel", default="", show_default=False)
        if typed.strip() != needed.phrase:
            return typed, False, False
    elif not click.confirm("Approve and run?", default=False):
        return None, False, False
    stale_ok = False
    if needed and needed.stale:
        stale_ok = click.confirm(f"The data may be out of date ({needed.stale}). Run anyway?", default=False)
        if not stale_ok:
            return typed, False, False
    return typed, stale_ok, True
