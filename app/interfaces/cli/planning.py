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
@click.option("--approve", is_flag=True, help="Approve a mutating plan without asking.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--resources", "resources_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--server", "server_url", default=None)
@click.option("--offline", is_flag=True)
def run_command(prompt: str, approve: bool, as_json: bool, resources_file: Path | None, server_url: str | None,
                offline: bool) -> None:
    """Plan PROMPT, ask for approval (or --approve), run it, report. Exit 3 when nothing ran because the
    plan was not approved (no terminal and no --approve) or needs a clarification; 1 when a step failed."""
    from app.interfaces.render import render_plan
    from app.execution.runner import NotRun, open_runner

    runner = open_runner(local_stack)
    plan = _plan(runner, prompt, resources_file, offline, server_url)
    if not as_json:
        click.echo(render_plan(plan))
    result: dict = {"plan": plan.model_dump(mode="json"), "executed": False}
    code = 0
    if plan.clarification or not plan.script.steps:
        code = 3 if plan.clarification else 0
    else:
        if plan.approval_required:
            # Shown before the question: where the API has DryRun, AWS says now whether the call would pass.
            try:
                checks = runner.dry_run(plan)
            except NotRun as exc:
                checks = {s.step_id: f"dry run not possible: {exc}" for s in plan.script.steps}
            result["dry_run"] = checks
            if not as_json:
                for step_id, verdict in checks.items():
                    if verdict not in ("read-only", "no dry run for this API"):
                        click.echo(f"  dry run {step_id}: {verdict}")
        if plan.approval_required and not approve:
            if sys.stdin.isatty() and not as_json:
                approve = click.confirm("Approve and run?", default=False)
            if not approve:
                runner.deny(plan, "not approved")
                code = 3
        if code == 0:
            try:
                approval_id = runner.approve(plan) if plan.approval_required else None
                report = runner.execute(plan, approval_id)
                result.update(executed=True, **report)
                code = 0 if report["ok"] else 1
                if not as_json:
                    for s in report["steps"]:
                        click.echo(f"  {s['step_id']} {s['operation']}: {s['status']}"
                                   + (f" ({s['error']})" if s.get("error") else ""))
                    click.echo(report["state_left"])
            except NotRun as exc:
                result.update(executed=False, error=str(exc))
                code = 3
                if not as_json:
                    click.echo(click.style(f"not run: {exc}", fg="red"), err=True)
    runner.close()
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    sys.exit(code)
