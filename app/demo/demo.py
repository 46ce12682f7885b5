"""``cloudops demo``: the whole client path with no AWS account.

Starts moto on 127.0.0.1, creates a three-account estate in it (the seed's pg-instance-main1 among
realistic neighbours, and names that exist in two accounts), points ``CLOUDOPS_HOME`` at a demo
folder, syncs it like any real estate, then looks up and plans a handful of requests. The index, config
and status stay in the demo folder.

Without ``--serve`` the simulated AWS ends with the command. With ``--serve`` it keeps running until Ctrl+C
(or SIGTERM), and ``$CLOUDOPS_HOME/simulated-aws.json`` (app.demo.simulated_aws) tells every ``cloudops``
started with that CLOUDOPS_HOME where the demo's AWS profiles are, so ``cloudops run``, ``sync`` and the app
work on the demo estate from another shell: plan, approve and run end to end. The profiles and moto's
throwaway keys stay in a private temporary folder, never under CLOUDOPS_HOME.

The demo writes config.yaml and syncs into the folder, so it refuses a folder that holds someone's own
accounts, a config.yaml it cannot read, or a demo already serving there: nothing is lost.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from app.interfaces.render import render_plan

DEMO_PROMPTS = [
    "Stop pg-instance-main1",
    "reboot web-server-1 and web-server-2 in production",
    "take a snapshot of pg-instance-main1 named before-upgrade",
    "scale web-asg in staging to 4",
    "delete orders-db",
    "what's the status of the core-network stack",
    "purge the payments queue",
    "order me a pizza",
]
DEMO_SEARCHES = ["pg-main", "production postgres database", "env=prod AND app=main", "queue in staging"]


def demo_home() -> Path:
    """``CLOUDOPS_HOME`` when set, else a ``demo`` folder in the user data dir (kept apart from real state)."""
    if os.environ.get("CLOUDOPS_HOME"):
        return Path(os.environ["CLOUDOPS_HOME"]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("cloudops-agent", appauthor=False)) / "demo"


class DemoRefused(Exception):
    """The demo would overwrite or fight with what is in its folder; the message says what and what to do."""


def check_folder(home: Path) -> None:
    """Refuse a folder the demo would damage (see the module's docstring); raises DemoRefused."""
    from app.config import ConfigError, load_config
    from app.demo import simulated_aws

    path = home / "config.yaml"
    try:
        config = load_config(path)
    except ConfigError as exc:
        raise DemoRefused(f"{exc} (the demo did not touch it)") from None
    serving = simulated_aws.running(home)
    if serving is not None:
        raise DemoRefused(f"a demo is already serving its simulated AWS for {home} (pid {serving['pid']}, "
                          f"{serving['endpoint']}): use it from this shell, or stop it with Ctrl+C in its shell first")
    where = ("run the demo with CLOUDOPS_HOME unset (it then uses a folder of its own) or pointing at an empty "
             "folder")
    if config.accounts and not simulated_aws.is_demo_estate(config):
        names = ", ".join(a.name for a in config.accounts)
        raise DemoRefused(f"{path} names your own accounts ({names}), which the demo would replace: {where}")
    if not path.exists() and (home / "index").exists():
        raise DemoRefused(f"{home} holds an index of the default AWS account, which the demo would mix with its "
                          f"own: {where}")


def run_demo(local_stack, prompts: list[str] | None = None, *, serve: bool = False) -> int:
    from app.config import save_config
    from app.demo.demo_estate import DEMO_ACCOUNTS, demo_config, simulated_estate

    home = demo_home()
    home.mkdir(parents=True, exist_ok=True)
    check_folder(home)
    os.environ["CLOUDOPS_HOME"] = str(home)
    say = lambda text, **style: click.echo(click.style(text, **style))  # noqa: E731
    say(f"CLOUDOPS_HOME={home}", dim=True)
    try:
        with simulated_estate() as (endpoint, summary):
            say(f"Simulated AWS (moto on {endpoint}): {summary.total} resources in {len(DEMO_ACCOUNTS)} accounts "
                f"x 2 regions, built in {summary.seconds:.1f}s.", bold=True)
            config = demo_config()
            save_config(config)
            code = _sync_search_plan(local_stack, config, home, prompts, say, serve)
            if serve:
                _serve(home, endpoint, say)
            return code
    finally:
        sys.stdout.flush()


def _serve(home: Path, endpoint: str, say) -> None:
    """Keep the simulated AWS up for other ``cloudops`` processes on ``home`` until Ctrl+C or SIGTERM."""
    import signal
    import threading

    from app.demo import simulated_aws

    stopping = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stopping.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
    simulated_aws.publish(home, endpoint, dict(os.environ))
    try:
        click.echo()
        say(f"The simulated AWS keeps running on {endpoint} until you press Ctrl+C. In another shell:", bold=True)
        for line in (f"export CLOUDOPS_HOME={home}",
                     'cloudops run "Stop pg-instance-main1"      # plan, approve (type its name), run, report',
                     'cloudops run "describe bastion in dev"    # a read: its result is printed',
                     "cloudops app                              # the desktop app on the demo estate",
                     "cloudops audit                            # what ran, who approved it"):
            say(f"  {line}")
        say(f"Every cloudops command with this CLOUDOPS_HOME reaches the demo's accounts through "
            f"{home / simulated_aws.FILE_NAME} (it names the AWS config in a private temporary folder; no key is "
            f"written under CLOUDOPS_HOME). For the aws CLI: export AWS_CONFIG_FILE={os.environ['AWS_CONFIG_FILE']} "
            f"AWS_SHARED_CREDENTIALS_FILE={os.environ['AWS_SHARED_CREDENTIALS_FILE']}.", dim=True)
        sys.stdout.flush()
        while not stopping.wait(0.5):
            pass
    finally:
        simulated_aws.withdraw(home)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    say("Stopped the simulated AWS; the index stays in CLOUDOPS_HOME (`cloudops demo --serve` starts it again).",
        dim=True)


def _sync_search_plan(local_stack, config, home: Path, prompts: list[str] | None, say, serve: bool = False) -> int:
    from app.estate.context import build_request
    from app.estate.estate import Estate

    estate = Estate(config)
    report = estate.engine().run()
    data = report.as_json()
    from app.estate.sync_failures import failure_sentences, headline

    line = headline(data)
    say(f"{line[0].upper()}{line[1:]} in {data['duration_s']:.1f}s: {data['added']} added, "
        f"{data['updated']} updated, {data['removed']} removed, {data['embedded']} embedded.", bold=True)
    for line in failure_sentences(report.errors, {a.name: a.profile for a in config.accounts}):
        say(f"  {line}", fg="red")
    index = estate.lookup()
    click.echo()
    for query in DEMO_SEARCHES:
        hits = index.search(query, limit=3)
        say(f"search> {query}", fg="cyan")
        for hit in hits:
            click.echo(f"   {hit.score:.2f} {index.names[hit.row]:<28} {index.types[hit.row]:<18} "
                       f"{index.account_names[hit.row]}/{index.regions[hit.row]}  ({'; '.join(hit.why)})")
    stack = local_stack()
    planner = stack.planner("local")
    for prompt in prompts or DEMO_PROMPTS:
        click.echo()
        say(f"> {prompt}", fg="cyan", bold=True)
        request = build_request(prompt, index, estate.store, config)
        click.echo(render_plan(planner.plan(request)))
    estate.close()
    if not serve:
        click.echo()
        say(f"Next, with CLOUDOPS_HOME={home}: `cloudops search QUERY`, `cloudops status`, `cloudops plan PROMPT` "
            "(the index stays). The simulated AWS ends with this command: `cloudops demo --serve` keeps it running, "
            "so that `cloudops run`, `sync` and the app work on the demo estate.", dim=True)
    return 0 if report.ok else 2
