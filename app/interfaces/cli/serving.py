"""``cloudops server`` (the stateless agent server) and ``cloudops app`` (the desktop app or its headless endpoint)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.interfaces.cli.base import die, local_stack, main


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
        die(str(exc))
    os.environ["CLOUDOPS_PLAYBOOKS"] = str(directory)
    if policy:
        os.environ["CLOUDOPS_SERVER_POLICY"] = str(policy)
    uvicorn.run("agent.server_main:app", host=host, port=port, workers=workers, log_level="info",
                factory=False, access_log=False)


@main.command()
@click.option("--headless", is_flag=True, help="Only the local endpoint (no tray, no window).")
@click.option("--port", default=0, show_default=True, type=int, help="Port on 127.0.0.1 (0: a free one).")
def app(headless: bool, port: int) -> None:
    """The desktop app: tray icon, Quick ask and main windows, and the local endpoint on 127.0.0.1.
    With --headless (or with no display), only the endpoint."""
    from app.interfaces.endpoint_client import AppEndpoint
    from app.home import cloudops_home

    running = AppEndpoint.discover(cloudops_home())
    if running is not None:  # one process owns the index: a second app would only fight over its lock
        die(f"CloudOps is already running for {cloudops_home()} at {running.url}", code=1)
    if not headless:
        from app.desktop.shell import DesktopUnavailable, run_desktop

        try:
            sys.exit(run_desktop(local_stack, port, echo=lambda line: click.echo(line, err=True)))
        except DesktopUnavailable as exc:
            click.echo(f"no desktop: {exc}; starting the headless endpoint", err=True)
    import signal
    import threading

    from app.interfaces.endpoint import start_endpoint

    endpoint = start_endpoint(local_stack, port)
    if not endpoint.wait_started():
        endpoint.stop()
        die("the local endpoint did not start", code=1)
    click.echo(f"CloudOps endpoint on {endpoint.url} (token in {endpoint.path})", err=True)
    # SIGTERM and SIGINT end the wait; the one Endpoint.stop then undoes everything start_endpoint did
    # (uvicorn's graceful exit, the estate, endpoint.json), as the desktop app's Quit does.
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        while not stopping.wait(0.5) and endpoint.thread.is_alive():
            pass
    finally:
        endpoint.stop()
