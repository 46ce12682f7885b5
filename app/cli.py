"""``cloudops``: the one console script. Heavy modules (torch, qdrant) are imported inside the commands
that need them, so ``cloudops --version`` and ``--help`` stay instant."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from agent import __version__
from app.cli_index import IndexAwareGroup, index


def _die(message: str, code: int = 2) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


def _local_stack(playbook_dir: Path | None = None, policy: Path | None = None):
    from agent.planner import AgentStack
    from agent.playbook import PlaybookError
    from agent.policy import PolicyError, load_deny_rules
    from app.home import agent_cache_dir, policy_file

    from agent.llm import GapFiller

    try:
        rules = load_deny_rules(policy or policy_file())
        stack = AgentStack.build(playbook_dir, cache_dir=agent_cache_dir(), deny_rules=rules)
    except (PlaybookError, PolicyError) as exc:
        _die(str(exc))
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
        from app.desktop import DesktopUnavailable, check_available

        try:
            check_available()
        except DesktopUnavailable as exc:
            click.echo(ctx.get_help())
            click.echo(f"\n(no desktop: {exc}; `cloudops app --headless` runs the local endpoint alone)")
            return
        ctx.invoke(app, headless=False, port=0)


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
@click.option("--server", "server_url", default=None, help="Agent server URL (default: config.yaml's server_url); "
              "falls back to the local stack.")
@click.option("--offline", is_flag=True, help="Always use the local agent stack.")
def plan(prompt: str, as_json: bool, resources_file: Path | None, server_url: str | None, offline: bool) -> None:
    """Plan PROMPT: resources from --resources, or looked up in the local index (through the running
    app when there is one: it owns the index while it runs)."""
    from app.render import render_plan
    from app.runner import open_runner

    runner = open_runner(_local_stack)
    try:
        response = _plan(runner, prompt, resources_file, offline, server_url)
    finally:
        runner.close()
    click.echo(response.model_dump_json(indent=2) if as_json else render_plan(response))


def _plan(runner, prompt: str, resources_file: Path | None, offline: bool, server_url: str | None):
    """The runner's plan, with every refusal turned into one clear line (exit 2)."""
    from pydantic import ValidationError

    from agent.protocol import describe_validation
    from app.endpoint_client import EndpointError

    try:
        return runner.plan(_file_request(prompt, resources_file), prompt, offline, server_url)
    except ValidationError as exc:
        _die("invalid request: " + describe_validation(exc))
    except EndpointError as exc:
        _die(f"the running app refused the request: {exc}")
    except OSError as exc:
        _die(str(exc))


def _file_request(prompt: str, resources_file: Path | None):
    """The PlanRequest from ``--resources`` (identified resources or a whole request), else None."""
    from pydantic import ValidationError

    from agent.protocol import PlanRequest, describe_validation

    if resources_file is None:
        return None
    try:
        data = json.loads(resources_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        _die(f"{resources_file}: {exc}")
    body = data if isinstance(data, dict) else {"identified_resources": data}
    try:
        return PlanRequest.model_validate({**body, "prompt": prompt})
    except ValidationError as exc:
        _die("invalid request: " + describe_validation(exc))


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
    from app.render import render_plan
    from app.runner import NotRun, open_runner

    runner = open_runner(_local_stack)
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


@main.command()
@click.option("--headless", is_flag=True, help="Only the local endpoint (no tray, no window).")
@click.option("--port", default=0, show_default=True, type=int, help="Port on 127.0.0.1 (0: a free one).")
def app(headless: bool, port: int) -> None:
    """The desktop app: tray icon, Quick ask and main windows, and the local endpoint on 127.0.0.1.
    With --headless (or with no display), only the endpoint."""
    from app.endpoint import LocalService, endpoint_server, loopback_socket, new_token, write_endpoint_file
    from app.endpoint_client import AppEndpoint
    from app.home import cloudops_home

    running = AppEndpoint.discover(cloudops_home())
    if running is not None:  # one process owns the index: a second app would only fight over its lock
        _die(f"CloudOps is already running for {cloudops_home()} at {running.url}", code=1)
    if not headless:
        from app.desktop import DesktopUnavailable, run_desktop

        try:
            sys.exit(run_desktop(_local_stack, port, echo=lambda line: click.echo(line, err=True)))
        except DesktopUnavailable as exc:
            click.echo(f"no desktop: {exc}; starting the headless endpoint", err=True)
    sock, url = loopback_socket(port)
    token = new_token()
    service = LocalService(_local_stack)
    path = write_endpoint_file(cloudops_home(), url, token)
    click.echo(f"CloudOps endpoint on {url} (token in {path})", err=True)
    # uvicorn shuts down gracefully on SIGTERM and then re-raises the signal to the handler that was there
    # before; make that handler an exit that unwinds through ``finally`` (the default one kills the process
    # on the spot, leaving endpoint.json and the index lock behind).
    import signal

    def _exit(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    try:
        endpoint_server(service, token).run(sockets=[sock])
    finally:
        path.unlink(missing_ok=True)
        service.estate.close()


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
def audit(as_json: bool, limit: int) -> None:
    """The local audit trail, newest first."""
    from app.audit import AuditTrail
    from app.home import cloudops_home

    trail = AuditTrail(cloudops_home() / "audit.db")
    events = [e.model_dump(mode="json") for e in trail.events(limit)]
    trail.close()
    if as_json:
        click.echo(json.dumps(events, indent=2))
        return
    for e in events:
        click.echo(f"{e['at']}  {e['kind']:<8} {e['operation'] or '':<22} {e['outcome'] or ''} "
                   f"{e['prompt'] or ''} {e['detail'] or ''}".rstrip())


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
@click.option("--cases", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of the set (default: tests/eval, or tests/eval_e2e with --e2e).")
@click.option("--e2e", is_flag=True, help="End to end: sync the demo estate from moto, then look up and plan "
              "every prompt of the set's cases.yaml.")
def evaluate(cases: Path | None, e2e: bool) -> None:
    """Run an evaluation set and print accuracy and calibration."""
    if e2e:
        from app.e2e_eval import run_e2e

        report = run_e2e((cases or Path("tests/eval_e2e")) / "cases.yaml", _local_stack)
    else:
        from agent.evaluation import run

        report = run(_local_stack().planner("local"), cases or Path("tests/eval"))
    click.echo(report.summary())


def _estate():
    from app.config import ConfigError
    from app.estate import Estate

    try:
        return Estate()
    except ConfigError as exc:
        _die(str(exc))


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
    from app.collectors import COLLECTORS

    if service and service not in COLLECTORS:
        _die(f"unknown service {service!r}; known: {', '.join(sorted(COLLECTORS))}")
    from app.endpoint_client import AppEndpoint, EndpointError
    from app.home import cloudops_home
    from app.resource_store import IndexBusy

    running = AppEndpoint.discover(cloudops_home())
    if running is not None:
        if events:
            _die("the app is running and owns the index: it syncs from the events queue on its schedule; "
                 "quit it to run `cloudops sync --events` here")
        try:
            data = running.sync(full, account, region, service)
        except (EndpointError, OSError) as exc:
            _die(f"sync through the running app failed: {exc}")
        _print_sync(data, as_json, via=running.url)
        sys.exit(0 if not data["errors"] else 2)
    estate = _estate()
    try:
        estate.store.qdrant  # noqa: B018 - take the index's single-writer lock now, before any AWS call
    except IndexBusy as exc:
        estate.close()
        _die(str(exc))
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
    where = f" (through the running app at {via})" if via else ""
    click.echo(f"synced {len(data['scopes'])} scopes in {data['duration_s']:.1f}s{where}: +{data['added']} "
               f"~{data['updated']} -{data['removed']} ={data['unchanged']} (embedded {data['embedded']})")
    for err in data["errors"]:
        click.echo(click.style(f"  failed {err['scope']}: {err['error']}", fg="red"), err=True)


def _sync_events(estate, engine):
    from app.events import drain

    cfg = estate.config.events
    if cfg is None:
        _die("no events queue configured (config.yaml: events: {queue_url: ..., account: NAME})")
    owner = next((s for s in engine.sessions if s.name == cfg.account), None)
    if owner is None:
        _die(f"events.account {cfg.account!r} is not a configured account")
    region = cfg.queue_url.split("//", 1)[1].split(".")[1] if ".amazonaws.com" in cfg.queue_url else owner.regions[0]
    refs = drain(owner.client("sqs", region), cfg.queue_url, default_account=owner.resolve_account_id())
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
    from app.lookup import QueryError

    if resource_type:
        try:
            resource_type = canonical_resource_type(resource_type)
        except ValueError as exc:
            _die(str(exc))
    from app.endpoint_client import AppEndpoint, EndpointError
    from app.home import cloudops_home

    running = AppEndpoint.discover(cloudops_home())
    if running is not None:
        try:
            rows = running.search(query, limit, account, resource_type)
        except (EndpointError, OSError) as exc:
            _die(str(exc))
    else:
        estate = _estate()
        index = estate.lookup()
        try:
            hits = index.search(query, limit=limit, account=account, resource_type=resource_type)
        except QueryError as exc:
            _die(str(exc))
        docs = estate.store.documents([h.id for h in hits])
        estate.close()
        rows = [{**docs[h.id].model_dump(exclude={"text", "content_hash"}), "score": h.score, "why": h.why}
                for h in hits if h.id in docs]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no match")
    for row in rows:
        click.echo(f"{row['score']:.2f}  {row['name']:<32} {row['resource_type']:<22} {row['account_name']}/{row['region']}"
                   f"  {row['state'] or ''}  ({'; '.join(row['why'])})")


@main.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Sync status per account / region / service."""
    from app.sync_status import StatusBook

    estate = _estate()
    rows = [s.model_dump(mode="json") for s in StatusBook(estate.store.engine).all()]
    total = estate.store.count()
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


@main.group()
def accounts() -> None:
    """Edit the accounts in $CLOUDOPS_HOME/config.yaml."""


@accounts.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def accounts_list(as_json: bool) -> None:
    from app.config import load_config

    config = load_config()
    rows = [a.model_dump() for a in config.accounts]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no accounts configured: the default profile and region are used")
    for a in rows:
        click.echo(f"{a['name']:<16} profile={a['profile'] or '-':<16} regions={','.join(a['regions']) or '(default)'}")


@accounts.command(name="add")
@click.argument("name")
@click.option("--profile", default=None, help="AWS profile (static keys, role_arn+source_profile, SSO).")
@click.option("--region", "regions", multiple=True, help="Region to sync (repeat).")
@click.option("--keys", is_flag=True, help="Prompt for access keys and store them in the OS keyring.")
def accounts_add(name: str, profile: str | None, regions: tuple[str, ...], keys: bool) -> None:
    from pydantic import ValidationError

    from agent.protocol import describe_validation
    from app.config import AccountConfig, load_config, save_config

    config = load_config()
    try:
        account = AccountConfig(name=name, profile=profile, regions=list(regions))
    except ValidationError as exc:
        _die(describe_validation(exc))
    if keys:
        from app.credentials import AccessKeys, NoKeyringError, store

        key_id = click.prompt("Access key id")
        secret = click.prompt("Secret access key", hide_input=True)
        try:
            store(name, AccessKeys(key_id, secret))
        except NoKeyringError as exc:
            _die(str(exc))
    config.accounts = [a for a in config.accounts if a.name != name] + [account]
    click.echo(f"saved {save_config(config)}")


@accounts.command(name="remove")
@click.argument("name")
def accounts_remove(name: str) -> None:
    from app.config import load_config, save_config
    from app.credentials import forget

    config = load_config()
    if not any(a.name == name for a in config.accounts):
        _die(f"no account named {name!r}")
    config.accounts = [a for a in config.accounts if a.name != name]
    forget(name)
    click.echo(f"removed {name}; saved {save_config(config)}")


@main.command()
def demo() -> None:
    """Start moto on loopback, create a three-account demo estate, sync it, search it and plan requests."""
    from app.demo import run_demo

    sys.exit(run_demo(_local_stack))


main.add_command(index)


if __name__ == "__main__":  # pragma: no cover
    main()
