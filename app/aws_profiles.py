"""The AWS config file's profiles: what ``cloudops accounts import`` offers, and the role profiles
``cloudops accounts discover`` writes for an AWS Organization's accounts.

Why profiles in the user's AWS config file (``AWS_CONFIG_FILE``, else ``~/.aws/config``) and not a file
of CloudOps' own: every plan shows the equivalent AWS CLI line pinned to ``--profile``, and that line must
run as shown; a role profile also needs its ``source_profile`` in the same file. Writing there is explicit
(``discover --write``, or a yes on a terminal) and reversible: a timestamped copy of the file is kept beside
it, CloudOps only ever edits one marked block of its own (the rest of the file is left byte for byte), and
``cloudops accounts remove NAME`` takes the account's profile out of that block again. No profile written
here holds a key: a role profile names a role and where its source credentials come from.

Reading goes through botocore's own parser, so what is offered is exactly what boto3 will resolve
(the shared credentials file's static-key profiles included). Keys are never read out or printed: a
profile is described by its kind.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from app.awsclient import aws_config_file

BLOCK_BEGIN = "# >>> cloudops-agent: role profiles written by `cloudops accounts discover`; " \
              "`cloudops accounts remove NAME` takes one out"
BLOCK_END = "# <<< cloudops-agent"
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/")
ProfileKind = Literal["keys", "role", "sso", "process", "web-identity", "other"]


class ProfilesError(ValueError):
    """The AWS config file cannot be read or written as asked (one sentence naming the file)."""


@dataclass(frozen=True)
class AwsProfile:
    """One profile as an operator recognises it: its name, how it gets credentials, region, account."""

    name: str
    kind: ProfileKind
    region: str | None = None
    account_id: str | None = None
    detail: str = ""
    role_arn: str | None = None

    def as_json(self) -> dict:
        return asdict(self)


def credentials_file() -> str:
    return os.path.expanduser(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")


def read_profiles() -> list[AwsProfile]:
    """Every profile of the AWS config file and the shared credentials file, as botocore parses them."""
    import botocore.session
    from botocore.exceptions import BotoCoreError

    try:
        raw = botocore.session.Session().full_config.get("profiles", {})
    except BotoCoreError as exc:  # ConfigParseError and friends
        raise ProfilesError(f"the AWS config file {aws_config_file()} (or {credentials_file()}) could not be read: "
                            f"{exc}; fix it, or point AWS_CONFIG_FILE at another file") from None
    return [_describe(name, values) for name, values in sorted(raw.items())]


def _describe(name: str, values: dict) -> AwsProfile:
    region = values.get("region") or None
    if values.get("sso_session") or values.get("sso_start_url"):
        account = values.get("sso_account_id")
        where = f"SSO session {values['sso_session']}" if values.get("sso_session") else f"SSO {values['sso_start_url']}"
        return AwsProfile(name, "sso", region, account if _is_account(account) else None,
                          f"{where}, role {values.get('sso_role_name', '?')} in {account or '?'}")
    if values.get("role_arn"):
        match = _ROLE_ARN.match(values["role_arn"])
        source = values.get("source_profile") or values.get("credential_source") or "?"
        return AwsProfile(name, "role", region, match.group(1) if match else None,
                          f"role {values['role_arn']} from {source}", role_arn=values["role_arn"])
    if values.get("aws_access_key_id"):
        return AwsProfile(name, "keys", region, None, "static access keys")
    if values.get("credential_process"):
        return AwsProfile(name, "process", region, None, "credential_process")
    if values.get("web_identity_token_file"):
        return AwsProfile(name, "web-identity", region, None, "web identity token")
    return AwsProfile(name, "other", region, None, "credentials from the environment or instance")


def _is_account(value: str | None) -> bool:
    return bool(value) and bool(re.fullmatch(r"\d{12}", str(value)))


def account_name_for(text: str) -> str:
    """A config.yaml account name (letters, digits, ``_.-``; 64 at most) from a profile or account name."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip()).strip("-_.")[:64].rstrip("-_.")
    return name or "account"


# ---- role profiles of CloudOps' block ---------------------------------------------------------------------

@dataclass(frozen=True)
class RoleProfile:
    """A profile that assumes ``role_arn`` with credentials from ``source_profile`` (or the environment)."""

    name: str
    role_arn: str
    source_profile: str | None
    region: str | None = None

    def lines(self) -> list[str]:
        source = f"source_profile = {self.source_profile}" if self.source_profile else "credential_source = Environment"
        return [f"[profile {self.name}]", f"role_arn = {self.role_arn}", source,
                *([f"region = {self.region}"] if self.region else []), ""]


def _split(text: str) -> tuple[str, list[RoleProfile], str]:
    """(text before CloudOps' block, the block's profiles, text after it)."""
    begin = text.find(BLOCK_BEGIN)
    if begin < 0:
        return text, [], ""
    end = text.find(BLOCK_END, begin)
    if end < 0:
        raise ProfilesError(f"{aws_config_file()} has CloudOps' opening marker but not its closing one "
                            f"({BLOCK_END!r}); restore the file from its .cloudops-backup copy or remove the marker")
    after = text[end + len(BLOCK_END):]
    return text[:begin], _parse_block(text[begin + len(BLOCK_BEGIN):end]), after[1:] if after.startswith("\n") else after


def _parse_block(block: str) -> list[RoleProfile]:
    profiles, current = [], None
    for line in block.splitlines():
        line = line.strip()
        header = re.fullmatch(r"\[profile ([^\]]+)\]", line)
        if header:
            current = {"name": header.group(1)}
            profiles.append(current)
        elif current is not None and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            current[key] = value
    return [RoleProfile(p["name"], p.get("role_arn", ""), p.get("source_profile"), p.get("region")) for p in profiles]


def written_profiles(path: Path | None = None) -> list[RoleProfile]:
    """The profiles in CloudOps' block of the AWS config file (none when there is no file or block)."""
    path = Path(path or aws_config_file())
    try:
        return _split(path.read_text(encoding="utf-8"))[1]
    except FileNotFoundError:
        return []


def _write_block(path: Path, before: str, profiles: list[RoleProfile], after: str) -> None:
    block = "" if not profiles else "\n".join(
        [BLOCK_BEGIN, *[line for p in profiles for line in p.lines()]]).rstrip("\n") + "\n" + BLOCK_END + "\n"
    if block and before and not before.endswith("\n"):
        before += "\n"
    text = before + block + after
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    tmp = path.with_name(f".{path.name}.cloudops.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)  # atomic: the file is the old one or the new one, never half of each


def backup(path: Path) -> Path | None:
    """A timestamped copy beside ``path`` (same mode), before CloudOps first changes it in a run."""
    if not path.exists():
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    copy = path.with_name(f"{path.name}.cloudops-backup-{stamp}")
    shutil.copy2(path, copy)
    return copy


def add_role_profiles(profiles: list[RoleProfile], path: Path | None = None) -> tuple[Path, Path | None]:
    """Write ``profiles`` into CloudOps' block (replacing same-named ones there); (the file, its backup)."""
    path = Path(path or aws_config_file())
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    before, existing, after = _split(text)
    names = {p.name for p in profiles}
    kept = [p for p in existing if p.name not in names]
    copy = backup(path)
    _write_block(path, before, kept + profiles, after)
    return path, copy


def remove_role_profile(name: str, path: Path | None = None) -> bool:
    """Take profile ``name`` out of CloudOps' block (the block goes when it is empty); False when CloudOps
    did not write it (a profile of the user's own is never touched)."""
    path = Path(path or aws_config_file())
    if not path.exists():
        return False
    before, existing, after = _split(path.read_text(encoding="utf-8"))
    if not any(p.name == name for p in existing):
        return False
    _write_block(path, before, [p for p in existing if p.name != name], after)
    return True


# ---- an AWS Organization's accounts ---------------------------------------------------------------------

@dataclass(frozen=True)
class OrgAccount:
    account_id: str
    name: str
    status: str


def organization_accounts(session) -> tuple[str, str, list[OrgAccount]]:
    """(the caller's account id, its partition, the organization's accounts) through ``session`` (an
    app.awsclient.AccountSession): the management account's credentials, or a delegated administrator's."""
    sts = session.client("sts", session.regions[0])
    caller = sts.get_caller_identity()
    partition = caller["Arn"].split(":")[1]
    orgs = session.client("organizations", "us-gov-west-1" if partition == "aws-us-gov" else
                          "cn-northwest-1" if partition == "aws-cn" else "us-east-1")
    orgs.describe_organization()  # AWSOrganizationsNotInUseException outside an organization, said plainly
    accounts = [OrgAccount(a["Id"], a.get("Name") or a["Id"], a.get("Status", "ACTIVE"))
                for page in orgs.get_paginator("list_accounts").paginate() for a in page["Accounts"]]
    return caller["Account"], partition, sorted(accounts, key=lambda a: a.name.lower())
