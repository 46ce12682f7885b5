"""``cloudops``: the one console script. Heavy modules (torch, qdrant) are imported inside the commands
that need them, so ``cloudops --version`` and ``--help`` stay instant."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from agent import __version__


def _die(message: str, code: int = 2) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


def _local_stack(playbook_dir: Path | None = None, policy: Path | None = None):
    from agent.planner import AgentStack
    from agent.playbook import PlaybookError
    from agent.policy import PolicyError, load_deny_rules
    from app.home import agent_cache_dir, policy_file

    try:
        rules = load_deny_rules(policy or policy_file())
        return AgentStack.build(playbook_dir, cache_dir=agent_cache_dir(), deny_rules=rules)
    except (PlaybookError, PolicyError) as exc:
        _die(str(exc))


@click.group(invoke_without_command=True)
@click.version_option(__version__, prog_name="cloudops")
@click.pass_context
def main(ctx: click.Context) -> None:
    """CloudOps Agent: plain-language AWS requests in, exact risk-assessed plans out."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--playbooks", "playbook_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Playbook directory (default: the bundled playbooks/).")
@click.option("--policy", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="YAML file with deny_rules that apply to every plan.")
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes.")
def server(host: str, port: int, playbook_dir: Path | None, policy: Path | None, workers: int) -> None:
    """Run the stateless agent server (POST /v1/plan, GET /v1/health, GET /v1/playbooks)."""
    import os

    import uvicorn

    from agent.playbook import PlaybookError, default_playbook_dir, load_playbooks
    from agent.policy import PolicyError, load_deny_rules

    directory = playbook_dir or default_playbook_dir()
    try:
        load_playbooks(directory)  # fail fast, naming the file and field, before binding a port
        if policy:
            load_deny_rules(policy)
    except (PlaybookError, PolicyError) as exc:
        _die(str(exc))
    os.environ["CLOUDOPS_PLAYBOOKS"] = str(directory)
    if policy:
        os.environ["CLOUDOPS_SERVER_POLICY"] = str(policy)
    uvicorn.run("agent.server_main:app", host=host, port=port, workers=workers, log_level="info",
                factory=False, access_log=False)


@main.command()
@click.argument("prompt")
@click.option("--json", "as_json", is_flag=True, help="Print the PlanResponse as JSON.")
@click.option("--resources", "resources_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="JSON file: a list of identified resources (or a whole PlanRequest without the prompt).")
@click.option("--server", "server_url", default=None, help="Agent server URL; falls back to the local stack.")
@click.option("--offline", is_flag=True, help="Always use the local agent stack.")
def plan(prompt: str, as_json: bool, resources_file: Path | None, server_url: str | None, offline: bool) -> None:
    """Plan PROMPT against the identified resources."""
    from pydantic import ValidationError

    from agent.protocol import PlanRequest
    from app.render import render_plan

    body: dict = {}
    if resources_file:
        try:
            data = json.loads(resources_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            _die(f"{resources_file}: {exc}")
        body = data if isinstance(data, dict) else {"identified_resources": data}
    try:
        request = PlanRequest.model_validate({**body, "prompt": prompt})
    except ValidationError as exc:
        _die("invalid request: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    from app.remote import plan_with_fallback

    response = plan_with_fallback(request, None if offline else server_url, _local_stack)
    click.echo(response.model_dump_json(indent=2) if as_json else render_plan(response))


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--dir", "playbook_dir", type=click.Path(path_type=Path, file_okay=False), default=None)
def playbooks(as_json: bool, playbook_dir: Path | None) -> None:
    """Validate and list the playbooks (exit 2 naming the file and field of the first bad one)."""
    from agent.playbook import PlaybookError, default_playbook_dir, load_playbooks

    try:
        loaded = load_playbooks(playbook_dir or default_playbook_dir())
    except PlaybookError as exc:
        _die(str(exc))
    rows = [{"id": lp.playbook.id, "service": lp.playbook.service, "operation": lp.playbook.main_operation,
             "read_only": lp.playbook.read_only, "title": lp.playbook.title} for lp in loaded]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['id']:<44} {row['operation']:<28} {'read-only' if row['read_only'] else 'mutating'}")
    click.echo(f"{len(rows)} playbooks valid")


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
@click.option("--cases", type=click.Path(path_type=Path, file_okay=False), default=Path("tests/eval"), show_default=True)
def evaluate(cases: Path) -> None:
    """Run the planner evaluation set and print accuracy and calibration."""
    from agent.evaluation import run

    report = run(_local_stack().planner("local"), cases)
    click.echo(report.summary())


@main.command()
def demo() -> None:
    """Plan a few requests over the simulated demo estate (no AWS account needed)."""
    from app.demo import run_demo

    run_demo(_local_stack())


if __name__ == "__main__":  # pragma: no cover
    main()
