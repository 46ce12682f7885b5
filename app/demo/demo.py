"""``cloudops demo``: the whole client path with no AWS account.

Starts moto on 127.0.0.1, creates a three-account estate in it (the seed's pg-instance-main1 among
realistic neighbours, and names that exist in two accounts), points ``CLOUDOPS_HOME`` at a demo
folder, syncs it like any real estate, then looks up and plans a handful of requests. The estate
lives in moto for this run only; the index, config and status stay in the demo folder.
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


def run_demo(local_stack, prompts: list[str] | None = None) -> int:
    from app.config import save_config
    from app.demo.demo_estate import DEMO_ACCOUNTS, demo_config, simulated_estate

    home = demo_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["CLOUDOPS_HOME"] = str(home)
    say = lambda text, **style: click.echo(click.style(text, **style))  # noqa: E731
    say(f"CLOUDOPS_HOME={home}", dim=True)
    try:
        with simulated_estate() as (endpoint, summary):
            say(f"Simulated AWS (moto on {endpoint}): {summary.total} resources in {len(DEMO_ACCOUNTS)} accounts "
                f"x 2 regions, built in {summary.seconds:.1f}s.", bold=True)
            config = demo_config()
            save_config(config)
            return _sync_search_plan(local_stack, config, home, prompts, say)
    finally:
        sys.stdout.flush()


def _sync_search_plan(local_stack, config, home: Path, prompts: list[str] | None, say) -> int:
    from app.estate.context import build_request
    from app.estate.estate import Estate

    estate = Estate(config)
    report = estate.engine().run()
    data = report.as_json()
    say(f"Synced {len(report.scopes)} scopes in {data['duration_s']:.1f}s: {data['added']} added, "
        f"{data['updated']} updated, {data['removed']} removed, {data['embedded']} embedded"
        + (f", {len(report.errors)} failed" if report.errors else "") + ".", bold=True)
    for err in report.errors:
        say(f"  failed {err['scope']}: {err['error']}", fg="red")
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
    click.echo()
    say(f"Next, with CLOUDOPS_HOME={home}: `cloudops search QUERY`, `cloudops status`, `cloudops plan PROMPT` "
        "(the index stays; the simulated AWS ends with this command, so `cloudops run` needs a real account).",
        dim=True)
    return 0 if report.ok else 2
