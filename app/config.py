"""``$CLOUDOPS_HOME/config.yaml``: the accounts to sync, the agent server, schedules.

The file holds names, profiles and regions only; access keys go to the OS keyring (app.credentials).
With no file, the default profile and region are used.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.home import cloudops_home

DEFAULT_REGION = "us-east-1"


class ConfigError(ValueError):
    pass


class AccountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    profile: str | None = None
    regions: list[str] = Field(default_factory=list)
    account_id: str | None = Field(default=None, pattern=r"^\d{12}$")

    @field_validator("regions")
    @classmethod
    def _regions(cls, values: list[str]) -> list[str]:
        import re

        for region in values:
            if not re.match(r"^[a-z]{2}(-gov)?-[a-z]+-\d$", region):
                raise ValueError(f"{region!r} is not an AWS region")
        return list(dict.fromkeys(values))


class Schedules(BaseModel):
    """How often the running app syncs by itself (app.estate.scheduler); each interval gets up to 10 % jitter."""

    model_config = ConfigDict(extra="forbid")
    full_every_s: int = Field(default=6 * 3600, ge=60)
    incremental_every_s: int = Field(default=15 * 60, ge=30)
    events_every_s: int = Field(default=60, ge=10, description="How often the events queue is drained, when "
                                "config.yaml names one (events: {queue_url, account}).")


class EventsConfig(BaseModel):
    """Where EventBridge delivers resource-change events (an SQS queue) and which account reads it."""

    model_config = ConfigDict(extra="forbid")
    queue_url: str = Field(pattern=r"^https?://")
    account: str = Field(description="Name of the configured account that owns the queue.")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accounts: list[AccountConfig] = Field(default_factory=list)
    events: EventsConfig | None = None
    server_url: str | None = None
    embed_via_server: bool = False
    offline: bool = Field(default=False, description="Plan with the local agent stack only; never contact server_url.")
    schedules: Schedules = Field(default_factory=Schedules)

    def effective_accounts(self) -> list[AccountConfig]:
        """The configured accounts, or the default profile and region when none is configured."""
        if self.accounts:
            return [a if a.regions else a.model_copy(update={"regions": [_default_region()]}) for a in self.accounts]
        return [AccountConfig(name="default", profile=os.environ.get("AWS_PROFILE"), regions=[_default_region()])]


def _default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def env_seconds(name: str, default: float) -> float:
    """A wait in seconds from the environment variable ``name`` (tests shorten waits this way): at least
    0.1 s; ``default`` when it is unset or not a number."""
    try:
        return max(0.1, float(os.environ.get(name, default)))
    except ValueError:
        return default


def config_path() -> Path:
    return cloudops_home() / "config.yaml"


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    if not path.exists():
        return Config()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return Config.model_validate(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def save_config(config: Config, path: Path | None = None) -> Path:
    path = path or config_path()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private from the first byte
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(yaml.safe_dump(config.model_dump(exclude_defaults=True), sort_keys=False))
    os.replace(tmp, path)  # atomic: a crash never leaves half a config
    return path
