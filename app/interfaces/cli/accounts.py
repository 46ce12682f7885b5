"""``cloudops accounts``: the accounts in $CLOUDOPS_HOME/config.yaml."""

from __future__ import annotations

import json
import re

import click

from app.interfaces.cli.base import die, main


@main.group()
def accounts() -> None:
    """Edit the accounts in $CLOUDOPS_HOME/config.yaml."""


@accounts.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def accounts_list(as_json: bool) -> None:
    config = _load_config_or_die()
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
    from app.config import AccountConfig, save_config

    config = _load_config_or_die()
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
@click.option("--keep-profile", is_flag=True, help="Keep the role profile `accounts discover` wrote for it.")
def accounts_remove(name: str, keep_profile: bool) -> None:
    """Remove an account from config.yaml, its keys from the keyring, and the role profile that
    `cloudops accounts discover` wrote for it (a profile of your own is never touched)."""
    from app.aws_profiles import ProfilesError, remove_role_profile
    from app.awsclient import aws_config_file
    from app.config import save_config
    from app.credentials import forget

    config = _load_config_or_die()
    account = next((a for a in config.accounts if a.name == name), None)
    if account is None:
        die(f"no account named {name!r}")
    config.accounts = [a for a in config.accounts if a.name != name]
    forget(name)
    click.echo(f"removed {name}; saved {save_config(config)}")
    if account.profile and not keep_profile and not any(a.profile == account.profile for a in config.accounts):
        try:
            if remove_role_profile(account.profile):
                click.echo(f"removed profile {account.profile} (written by `accounts discover`) from {aws_config_file()}")
        except (OSError, ProfilesError) as exc:
            die(f"the profile {account.profile} stays in {aws_config_file()}: {exc}")


# ---- import: the profiles of the AWS config file ----------------------------------------------------------

def _interactive() -> bool:
    import sys

    return sys.stdin.isatty() and sys.stdout.isatty()


def _pick(offered: list, prompt: str) -> list:
    """Numbers like '1,3-5', 'all', or nothing; asked again until the answer parses."""
    while True:
        answer = click.prompt(prompt, default="", show_default=False).strip().lower()
        if not answer:
            return []
        if answer in ("all", "a", "*"):
            return list(offered)
        chosen: list[int] = []
        try:
            for part in answer.replace(" ", ",").split(","):
                if not part:
                    continue
                low, _, high = part.partition("-")
                chosen += range(int(low), int(high or low) + 1)
        except ValueError:
            chosen = [0]
        if all(1 <= n <= len(offered) for n in chosen):
            return [offered[n - 1] for n in dict.fromkeys(chosen)]
        click.echo(f"  answer with numbers from 1 to {len(offered)} (e.g. 1,3-5), 'all', or nothing to cancel")


def _load_config_or_die():
    from app.config import ConfigError, load_config

    try:
        return load_config()
    except ConfigError as exc:
        die(str(exc))


@accounts.command(name="import")
@click.option("--all", "take_all", is_flag=True, help="Add every profile not configured yet.")
@click.option("--profile", "names", multiple=True, help="Add this profile (repeat).")
@click.option("--region", "regions", multiple=True, help="Regions to sync for the added accounts (repeat; default: "
              "each profile's own region).")
@click.option("--json", "as_json", is_flag=True, help="Print what was offered and added as JSON (never asks).")
def accounts_import(take_all: bool, names: tuple[str, ...], regions: tuple[str, ...], as_json: bool) -> None:
    """Add accounts from the profiles of the AWS config file (AWS_CONFIG_FILE, else ~/.aws/config, and the
    shared credentials file): static keys, role_arn + source_profile, SSO. On a terminal it lists them and
    asks which; else --all or --profile P. Only names go to config.yaml: credentials stay with the profile."""
    from pydantic import ValidationError

    from agent.protocol import describe_validation
    from app.aws_profiles import ProfilesError, account_name_for, read_profiles
    from app.awsclient import aws_config_file
    from app.config import AccountConfig, save_config

    config = _load_config_or_die()
    try:
        profiles = read_profiles()
    except ProfilesError as exc:
        die(str(exc))
    if not profiles:
        die(f"no AWS profiles found in {aws_config_file()}: create one with `aws configure` or `aws configure sso`, "
            "or point AWS_CONFIG_FILE at your config file")
    known = {p.name: p for p in profiles}
    unknown = [n for n in names if n not in known]
    if unknown:
        die(f"no profile {unknown[0]!r} in {aws_config_file()}; its profiles: {', '.join(known)}")
    configured = {a.profile for a in config.accounts if a.profile}
    offered = [p for p in profiles if p.name not in configured]
    if take_all:
        chosen = offered
    elif names:
        chosen = [known[n] for n in dict.fromkeys(names)]
    elif _interactive() and not as_json:
        if not offered:
            click.echo(f"every profile of {aws_config_file()} is configured already (`cloudops accounts list`)")
            return
        click.echo(f"Profiles in {aws_config_file()} not configured yet:")
        for i, p in enumerate(offered, 1):
            click.echo(f"  {i:>2}) {p.name:<24} {p.detail}{f' · {p.region}' if p.region else ''}")
        chosen = _pick(offered, "Add which? (e.g. 1,3-5; 'all'; nothing to cancel)")
    else:
        chosen = []
    added, skipped = [], []
    names_taken = {a.name for a in config.accounts}
    for profile in chosen:
        name = account_name_for(profile.name)
        if profile.name in configured:
            skipped.append({"profile": profile.name, "reason": "already configured"})
            continue
        if name in names_taken:
            skipped.append({"profile": profile.name, "reason": f"an account named {name!r} exists already; add it "
                            f"under another name: cloudops accounts add OTHER --profile {profile.name}"})
            continue
        try:
            account = AccountConfig(name=name, profile=profile.name,
                                    regions=list(regions) or ([profile.region] if profile.region else []),
                                    account_id=profile.account_id)
        except ValidationError as exc:
            skipped.append({"profile": profile.name, "reason": describe_validation(exc)})
            continue
        added.append(account)
        names_taken.add(name)
    path = None
    if added:
        config.accounts = [*config.accounts, *added]
        path = save_config(config)
    if as_json:
        click.echo(json.dumps({"aws_config_file": aws_config_file(), "offered": [p.as_json() for p in offered],
                               "added": [a.model_dump() for a in added], "skipped": skipped,
                               "config": str(path) if path else None}, indent=2))
        return
    for account in added:
        click.echo(f"added {account.name} (profile {account.profile}, regions "
                   f"{','.join(account.regions) or '(default)'})")
    for skip in skipped:
        click.echo(f"skipped {skip['profile']}: {skip['reason']}", err=True)
    if path:
        click.echo(f"saved {path}")
    elif not chosen and not _interactive():
        for p in offered:
            click.echo(f"  {p.name:<24} {p.detail}{f' · {p.region}' if p.region else ''}")
        click.echo("nothing added: choose with --all or --profile NAME (on a terminal, it asks)", err=True)
    elif not added:
        click.echo("nothing added")


# ---- discover: an AWS Organization's accounts, each reached through a role ------------------------------

@accounts.command(name="discover")
@click.option("--role", required=True, help="The role to assume in each member account "
              "(e.g. OrganizationAccountAccessRole, or a read-only role of yours).")
@click.option("--from", "source", default=None, help="The profile whose credentials list the organization and "
              "assume the role (default: AWS_PROFILE, else the default credentials).")
@click.option("--region", "regions", multiple=True, help="Regions to sync in each account (repeat).")
@click.option("--prefix", default="", help="Put this before each new profile and account name.")
@click.option("--write", is_flag=True, help="Write the role profiles to the AWS config file (a backup is kept) "
              "and add the accounts; without it (and no yes on a terminal) nothing is written.")
@click.option("--json", "as_json", is_flag=True)
def accounts_discover(role: str, source: str | None, regions: tuple[str, ...], prefix: str, write: bool,
                      as_json: bool) -> None:
    """List an AWS Organization's accounts and add a role profile for each: written to the AWS config file
    that boto3 and the AWS CLI read (AWS_CONFIG_FILE, else ~/.aws/config), inside a block CloudOps marks as
    its own, so the AWS CLI lines of plans run as shown. `cloudops accounts remove NAME` takes a profile out."""
    import os

    from botocore.exceptions import BotoCoreError, ClientError

    from app.aws_profiles import (ProfilesError, RoleProfile, account_name_for, add_role_profiles,
                                  organization_accounts, read_profiles, written_profiles)
    from app.awsclient import AccountSession, aws_config_file, describe_error, error_code
    from app.config import AccountConfig, save_config

    if not re.fullmatch(r"[\w+=,.@/-]{1,512}", role):
        die(f"--role {role!r} is not an IAM role name (letters, digits and +=,.@_-/)")
    config = _load_config_or_die()
    try:
        profiles = {p.name: p for p in read_profiles()}
        ours = {p.name for p in written_profiles()}
    except ProfilesError as exc:
        die(str(exc))
    source = source or os.environ.get("AWS_PROFILE") or ("default" if "default" in profiles else None)
    if source is not None and source not in profiles:
        die(f"no profile {source!r} in {aws_config_file()} to list the organization with; give --from PROFILE")
    # Each account syncs --region, else the region of the profile it is reached from (AWS's own default).
    regions = tuple(regions) or ((profiles[source].region,) if source and profiles[source].region else ())
    session = AccountSession("discover", source, [regions[0] if regions else "us-east-1"])
    try:
        caller, partition, members = organization_accounts(session)
    except ClientError as exc:
        code = error_code(exc)
        hint = {"AWSOrganizationsNotInUseException": "this account is in no AWS Organization",
                "AccessDeniedException": "these credentials may not list the organization's accounts: use the "
                                         "management account's profile or a delegated administrator's"}
        die(f"listing the organization's accounts with {f'profile {source}' if source else 'the default credentials'} "
            f"failed ({describe_error(exc)}){': ' + hint[code] if code in hint else ''}")
    except BotoCoreError as exc:
        die(f"listing the organization's accounts failed: {describe_error(exc)}")
    existing_names = {a.name for a in config.accounts}
    existing_ids = {a.account_id for a in config.accounts if a.account_id}
    plan, skipped = [], []
    for member in members:
        if member.status != "ACTIVE":
            skipped.append({"account_id": member.account_id, "name": member.name, "reason": f"status {member.status}"})
            continue
        if member.account_id == caller:
            skipped.append({"account_id": member.account_id, "name": member.name, "reason": "the account these "
                            f"credentials belong to: add it with `cloudops accounts add NAME --profile {source or 'default'}`"})
            continue
        if member.account_id in existing_ids:
            skipped.append({"account_id": member.account_id, "name": member.name, "reason": "already configured"})
            continue
        role_arn = f"arn:{partition}:iam::{member.account_id}:role/{role}"
        name = account_name_for(prefix + member.name.lower())
        for candidate in (name, account_name_for(f"{name}-{member.account_id}")):
            mine = profiles.get(candidate) is None or candidate in ours
            if candidate not in existing_names and (mine or profiles[candidate].role_arn == role_arn):
                name = candidate
                break
        else:
            skipped.append({"account_id": member.account_id, "name": member.name, "reason": f"the names {name} and "
                            f"{name}-{member.account_id} are taken; give another --prefix"})
            continue
        # A profile of the user's own that assumes the same role is used as it is, never written again.
        profile = None if not mine else RoleProfile(name, role_arn, source, regions[0] if regions else None)
        plan.append((member, name, profile,
                     AccountConfig(name=name, profile=name, regions=list(regions), account_id=member.account_id)))
    target = aws_config_file()
    found = [{"account_id": m.account_id, "name": m.name, "profile": n, "role_arn": p.role_arn if p else None,
              "profile_exists": p is None} for m, n, p, _ in plan]
    if not as_json:
        click.echo(f"{len(members)} accounts in the organization; {len(plan)} to add through role {role}:")
        for m, n, p, _ in plan:
            click.echo(f"  {m.account_id}  {m.name:<28} profile {n}{'' if p else ' (already in the file)'}")
        for s in skipped:
            click.echo(f"  {s['account_id']}  {s['name']:<28} skipped: {s['reason']}")
    if plan and not write and _interactive() and not as_json:
        write = click.confirm(f"Write these {len(plan)} role profiles to {target} (a backup copy is kept) and add the "
                              "accounts to config.yaml?", default=False)
    written = backup_path = saved = None
    if plan and write:
        new_profiles = [p for _, _, p, _ in plan if p is not None]
        try:
            if new_profiles:
                written, backup_path = add_role_profiles(new_profiles)
        except (OSError, ProfilesError) as exc:
            die(f"could not write {target}: {exc}")
        config.accounts = [*config.accounts, *[a for _, _, _, a in plan]]
        saved = save_config(config)
    if as_json:
        click.echo(json.dumps({"organization_caller": caller, "accounts": found, "skipped": skipped,
                               "written": str(written) if written else None,
                               "backup": str(backup_path) if backup_path else None,
                               "config": str(saved) if saved else None}, indent=2))
        return
    if written:
        click.echo(f"wrote {len(new_profiles)} profiles to {written}" + (f" (backup: {backup_path})" if backup_path else ""))
    if saved:
        click.echo(f"saved {saved}")
    elif plan:
        click.echo(f"nothing written: run again with --write to add these profiles to {target} and the accounts "
                   "to config.yaml", err=True)
