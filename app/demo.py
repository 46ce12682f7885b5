"""``cloudops demo``: plan a handful of requests over a simulated estate, with no AWS account.

Until the sync engine lands, the simulated estate is a shipped list of identified resources; the
lookup is a plain name match over it (the real hybrid lookup replaces it).
"""

from __future__ import annotations

from importlib import resources as package_files

import click
import yaml

from agent.mentions import find_mentions
from agent.protocol import IdentifiedResource, PlanRequest
from app.render import render_plan

DEMO_PROMPTS = [
    "Stop pg-instance-main1",
    "reboot web-server-1 and web-server-2 in production",
    "take a snapshot of pg-instance-main1 named before-upgrade",
    "scale web-asg in staging to 4",
    "delete orders-db",
    "what's the status of the core-network stack",
    "order me a pizza",
]


def demo_estate() -> tuple[list[dict], list[IdentifiedResource]]:
    text = package_files.files("app").joinpath("data/demo_estate.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    estate = [IdentifiedResource.model_validate({k: v for k, v in r.items() if k != "key"}) for r in data["resources"]]
    return data["accounts"], estate


def naive_lookup(prompt: str, estate: list[IdentifiedResource]) -> list[IdentifiedResource]:
    return [m.resource for m in find_mentions(prompt, estate)]


def run_demo(stack) -> None:
    accounts, estate = demo_estate()
    planner = stack.planner("local")
    click.echo(click.style(f"Simulated estate: {len(estate)} resources in {len(accounts)} accounts "
                           f"({', '.join(a['name'] for a in accounts)}); {len(stack.playbooks)} playbooks.\n", bold=True))
    for prompt in DEMO_PROMPTS:
        request = PlanRequest(prompt=prompt, identified_resources=naive_lookup(prompt, estate),
                              user_context={"aws_accounts": accounts, "user_id": "demo"})
        click.echo(click.style(f"> {prompt}", fg="cyan", bold=True))
        click.echo(render_plan(planner.plan(request)))
        click.echo()
