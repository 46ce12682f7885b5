"""``cloudops accounts``: the accounts in $CLOUDOPS_HOME/config.yaml."""

from __future__ import annotations

import json

import click

from app.interfaces.cli.base import die, main


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
        die(describe_validation(exc))
    if keys:
        from app.credentials import AccessKeys, NoKeyringError, store

        key_id = click.prompt("Access key id")
        secret = click.prompt("Secret access key", hide_input=True)
        try:
            store(name, AccessKeys(key_id, secret))
        except NoKeyringError as exc:
            die(str(exc))
    config.accounts = [a for a in config.accounts if a.name != name] + [account]
    click.echo(f"saved {save_config(config)}")


@accounts.command(name="remove")
@click.argument("name")
def accounts_remove(name: str) -> None:
    from app.config import load_config, save_config
    from app.credentials import forget

    config = load_config()
    if not any(a.name == name for a in config.accounts):
        die(f"no account named {name!r}")
    config.accounts = [a for a in config.accounts if a.name != name]
    forget(name)
    click.echo(f"removed {name}; saved {save_config(config)}")
