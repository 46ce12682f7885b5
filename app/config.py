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
    """The config file, or the defaults when there is none. Any problem with the file is a ConfigError whose
    message is one sentence naming the file, the line and field, and what to do (see _unreadable and below)."""
    path = path or config_path()
    if not path.exists():
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        return Config.model_validate(data)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(_unreadable(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(_not_yaml(path, exc)) from None
    except ValidationError as exc:
        raise ConfigError(_invalid(path, text, exc)) from None


# -- ConfigError messages: one sentence naming the file, the line and field, and what to do ---------------
def _unreadable(path: Path, exc: BaseException) -> str:
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return (f"{path} cannot be read ({why}): make it a UTF-8 text file you can read (chmod u+rw {path}), or move it "
            "away to start with no accounts configured")


def _not_yaml(path: Path, exc: yaml.YAMLError) -> str:
    # Where the broken construct starts (an unclosed bracket's line), else where the parser gave up.
    mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = " ".join(str(getattr(exc, "problem", None) or type(exc).__name__).split())
    return (f"{path} is not valid YAML{where} ({problem}): fix that line, or move the file away to start with no "
            "accounts configured")


def _invalid(path: Path, text: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    field_name = ".".join(loc) or "the top level"
    line = _line_of(text, first["loc"])
    where = f" line {line}" if line else ""
    if first["type"] == "extra_forbidden":
        problem, fix = "not a setting CloudOps knows", "remove or rename it"
    else:
        problem, fix = first["msg"].removeprefix("Value error, "), "fix that value"
    return (f"{path}{where}, {field_name}: {problem}; {fix} (accounts can also be edited with "
            "`cloudops accounts add` and `cloudops accounts remove`)")


def _line_of(text: str, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at ``loc`` (mapping keys and list indexes), or of its nearest
    parent that exists; None when the text cannot be composed."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
# -- end of ConfigError messages --------------------------------------------------------------------------


def save_config(config: Config, path: Path | None = None) -> Path:
    path = path or config_path()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private from the first byte
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(yaml.safe_dump(config.model_dump(exclude_defaults=True), sort_keys=False))
    os.replace(tmp, path)  # atomic: a crash never leaves half a config
    return path
