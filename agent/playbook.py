"""Playbooks: the YAML files in ``playbooks/`` that say how one operation is done, and the loader
that refuses a bad one with the file and the field named.

A playbook is data, not code: bindings are ``{target.resource_id}``-style placeholders resolved by
:mod:`agent.bindings`, and conditions are flat maps of fact names (see :mod:`agent.facts`). Both are
checked at load, together with the operation and its required members against botocore's models.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent import aws_models
from agent.bindings import placeholders
from agent.facts import COMPARISONS, FACT_NAMES
from agent.protocol import RESOURCE_TYPES, RiskLevel, canonical_resource_type

MAX_PLAYBOOK_BYTES = 64 * 1024
_ID = re.compile(r"^[a-z][a-z0-9_]{2,80}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_TARGET_FIELDS = {"resource_id", "name", "arn", "account_id", "region", "engine", "current_state"}
_TARGET_PREFIXES = ("attributes.", "tags.")


class PlaybookError(ValueError):
    """A playbook file is invalid; the message names the file and the field."""

    def __init__(self, path: Path | str, field: str, message: str):
        self.path = str(path)
        self.field = field
        self.message = message
        super().__init__(f"{path}: {field}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParamSpec(_Strict):
    """A value the operator gives in the prompt (a snapshot name, an instance class, a count)."""

    name: str
    kind: Literal["string", "identifier", "token", "integer", "boolean", "instance_class", "json", "choice_list"]
    description: str
    required: bool = True
    default: str | int | bool | None = None
    cues: list[str] = Field(default_factory=list, description="Words that introduce the value: 'to', 'named', ...")
    false_cues: list[str] = Field(default_factory=list, description="A boolean's words for false: 'reboot it first' "
                                  "sets no_reboot false (``cues`` say true and win when both occur)")
    choices: list[str] = Field(default_factory=list)
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be snake_case")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    @model_validator(mode="after")
    def _false_cues_are_boolean(self) -> "ParamSpec":
        if self.false_cues and self.kind != "boolean":
            raise ValueError("false_cues: only a boolean parameter has words for false")
        return self


class Condition(_Strict):
    """All listed facts must hold. A list value means 'one of'; a ``<fact>_not`` key negates.

    ``param.<Member>`` reads the value the call sends (checked against the steps' operations at load), and a
    value may compare: ``{param.DesiredCapacity: {lt: fact.min_size}}``, ``{messages_in_flight: {gt: 0}}``
    (eq, ne, lt, le, gt, ge; the right side a literal, ``fact.<name>`` or ``param.<Member>``)."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _known_facts(self) -> "Condition":
        for key, value in (self.model_extra or {}).items():
            if key.startswith("param."):
                if not _MEMBER.match(key[6:]):
                    raise ValueError(f"{key!r}: param. takes an API member name, e.g. param.DesiredCapacity")
            else:
                base = key[:-4] if key.endswith("_not") else key
                if base not in FACT_NAMES:
                    raise ValueError(f"unknown fact {key!r}; known: {', '.join(sorted(FACT_NAMES))}, param.<Member>")
            if isinstance(value, dict):
                _check_comparison(key, value)
        if not self.model_extra:
            raise ValueError("a condition needs at least one fact")
        return self

    @property
    def members(self) -> list[str]:
        """The API members the condition reads (its keys and its comparisons' references)."""
        out = [k[6:] for k in self.facts if k.startswith("param.")]
        out += [v[6:] for c in self.facts.values() if isinstance(c, dict) for v in c.values()
                if isinstance(v, str) and v.startswith("param.")]
        return out

    @property
    def facts(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


_MEMBER = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,80}$")


def _check_comparison(key: str, comparison: dict[str, Any]) -> None:
    if len(comparison) != 1 or next(iter(comparison)) not in COMPARISONS:
        raise ValueError(f"{key}: a comparison is one of {', '.join(sorted(COMPARISONS))} with its value, "
                         f"e.g. {{lt: fact.min_size}}")
    (op, value), = comparison.items()
    if isinstance(value, str) and value.startswith("fact.") and value[5:] not in FACT_NAMES:
        raise ValueError(f"{key}.{op}: unknown fact {value!r}")
    if isinstance(value, str) and value.startswith("param.") and not _MEMBER.match(value[6:]):
        raise ValueError(f"{key}.{op}: {value!r} is not param.<Member>")
    if not isinstance(value, (str, int, float, bool)):
        raise ValueError(f"{key}.{op}: compare with a number, a word, fact.<name> or param.<Member>")


class Precondition(_Strict):
    when: Condition
    message: str
    severity: Literal["block", "warn"] = "block"


class RiskRule(_Strict):
    when: Condition
    level: RiskLevel
    reason: str


class RiskSpec(_Strict):
    base: RiskLevel = "low"
    base_reason: str | None = Field(default=None, description="Why the base level is what it is (shown first).")
    rules: list[RiskRule] = Field(default_factory=list)


class StepSpec(_Strict):
    id: str
    operation: str
    service: str | None = None
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    batch_member: str | None = Field(default=None, description="A list member that takes every target of one account and region in one call.")
    waiter: str | None = None
    mutating: bool | None = None

    @field_validator("operation")
    @classmethod
    def _pascal(cls, value: str) -> str:
        if not re.match(r"^[A-Z][A-Za-z0-9]+$", value):
            raise ValueError("must be the API name, e.g. StopDBInstance")
        return value


class Playbook(_Strict):
    id: str
    version: str = "1"
    title: str
    description: str = ""
    system: Literal["aws"] = "aws"
    service: str
    intent: str
    resource_types: list[str] = Field(min_length=1)
    read_only: bool
    destructive: bool = False
    utterances: list[str] = Field(min_length=3)
    parameters: list[ParamSpec] = Field(default_factory=list)
    steps: list[StepSpec] = Field(min_length=1)
    preconditions: list[Precondition] = Field(default_factory=list)
    risk: RiskSpec = Field(default_factory=RiskSpec)
    impact: str
    rollback: str | None = None

    @field_validator("resource_types")
    @classmethod
    def _types(cls, values: list[str]) -> list[str]:
        return [canonical_resource_type(v) for v in values]

    @field_validator("intent")
    @classmethod
    def _intent(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be one snake_case verb, e.g. stop")
        return value

    def step_service(self, step: StepSpec) -> str:
        return step.service or self.service

    def is_mutating(self, step: StepSpec) -> bool:
        return (not self.read_only) if step.mutating is None else step.mutating

    @property
    def main_operation(self) -> str:
        mutating = [s for s in self.steps if self.is_mutating(s)]
        return (mutating or self.steps)[0].operation

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.parameters if p.name == name), None)


@dataclass(frozen=True)
class LoadedPlaybook:
    playbook: Playbook
    path: Path
    content_hash: str


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases: they buy nothing in a playbook and enable YAML bombs."""

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(None, None, "aliases (*name) are not allowed in playbooks", event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.constructor.ConstructorError(None, None, "anchors (&name) are not allowed in playbooks", event.start_mark)
        return super().compose_node(parent, index)


def _load_yaml(text: str) -> Any:
    """The document, refusing anchors and aliases. With libyaml, one pass of its parser looks for them and
    its loader builds the data (the pure-Python loader cost ~10 ms a playbook, most of a warm start's time);
    without it, _NoAliasLoader does both."""
    if not getattr(yaml, "__with_libyaml__", False):
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.constructor.ConstructorError(None, None, "aliases (*name) are not allowed in playbooks",
                                                    event.start_mark)
        if getattr(event, "anchor", None):
            raise yaml.constructor.ConstructorError(None, None, "anchors (&name) are not allowed in playbooks",
                                                    event.start_mark)
    return yaml.load(text, Loader=yaml.CSafeLoader)  # noqa: S506 - the C SafeLoader


def _field_path(loc: tuple[Any, ...], data: Any) -> str:
    """Turn a pydantic location into ``steps[0].parameters`` (with the step id when there is one)."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and 0 <= item < len(node) and isinstance(node[item], dict) and "id" in node[item]:
                label = f"[{item}:{node[item]['id']}]"
            parts.append(label)
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(root)"


def parse_playbook(text: str, path: Path | str) -> Playbook:
    """Parse and fully check one playbook's text; raises PlaybookError naming file and field."""
    path = Path(path)
    if len(text.encode("utf-8")) > MAX_PLAYBOOK_BYTES:
        raise PlaybookError(path, "(file)", f"larger than {MAX_PLAYBOOK_BYTES} bytes")
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(yaml)"
        raise PlaybookError(path, where, str(getattr(exc, "problem", None) or exc)) from None
    if not isinstance(data, dict):
        raise PlaybookError(path, "(root)", "must be a mapping")
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PlaybookError(path, _field_path(first["loc"], data), first["msg"]) from None
    _check_semantics(playbook, path)
    return playbook


def _check_semantics(pb: Playbook, path: Path) -> None:
    if pb.id != path.stem:
        raise PlaybookError(path, "id", f"must equal the file name {path.stem!r}")
    type_services = {RESOURCE_TYPES[t] for t in pb.resource_types}
    if pb.service not in type_services:
        raise PlaybookError(path, "service", f"{pb.service!r} does not own any of {pb.resource_types}")
    param_names = {p.name for p in pb.parameters}
    step_ids: set[str] = set()
    for index, step in enumerate(pb.steps):
        where = f"steps[{index}:{step.id}]"
        if step.id in step_ids:
            raise PlaybookError(path, f"{where}.id", "duplicate step id")
        step_ids.add(step.id)
        service = pb.step_service(step)
        try:
            members = aws_models.input_members(service, step.operation)
            required = aws_models.required_members(service, step.operation)
        except aws_models.UnknownOperation as exc:
            raise PlaybookError(path, f"{where}.operation", str(exc)) from None
        for member in step.parameters:
            if member not in members:
                raise PlaybookError(path, f"{where}.parameters.{member}", f"{service}.{step.operation} has no such member")
        for member in required:
            if member not in step.parameters:
                raise PlaybookError(path, f"{where}.parameters", f"required member {member!r} of {step.operation} is not bound")
        if step.waiter is not None and step.waiter not in aws_models.waiter_names(service):
            raise PlaybookError(path, f"{where}.waiter", f"{service} has no waiter {step.waiter!r}; known: "
                                + ", ".join(sorted(aws_models.waiter_names(service))))
        if step.batch_member is not None:
            shape = members.get(step.batch_member)
            if shape is None or shape.type_name != "list" or step.batch_member not in step.parameters:
                raise PlaybookError(path, f"{where}.batch_member", "must name a bound list member")
        for name, value in step.parameters.items():
            for ref in placeholders(value):
                _check_ref(ref, param_names, path, f"{where}.parameters.{name}", batch=step.batch_member == name)
        mutating = pb.is_mutating(step)
        if not mutating and not aws_models.is_read_only(step.operation):
            raise PlaybookError(path, f"{where}.mutating", f"{step.operation} changes state; a read-only step cannot call it")
    for index, param in enumerate(pb.parameters):
        if isinstance(param.default, str):
            for ref in placeholders(param.default):
                if ref.startswith("param."):
                    raise PlaybookError(path, f"parameters[{index}].default", "a default cannot refer to another parameter")
                _check_ref(ref, param_names, path, f"parameters[{index}].default", batch=False)
    if pb.read_only and any(pb.is_mutating(s) for s in pb.steps):
        raise PlaybookError(path, "read_only", "a read-only playbook has a mutating step")
    step_members = {m for step in pb.steps for m in aws_models.input_members(pb.step_service(step), step.operation)}
    conditions = [(f"preconditions[{i}].when", p.when) for i, p in enumerate(pb.preconditions)]
    conditions += [(f"risk.rules[{i}].when", r.when) for i, r in enumerate(pb.risk.rules)]
    for where, condition in conditions:
        for member in condition.members:
            if member not in step_members:
                raise PlaybookError(path, f"{where}.param.{member}", "no step of this playbook sends that member; "
                                    "known: " + ", ".join(sorted(step_members)))


def _check_ref(ref: str, params: set[str], path: Path, field: str, *, batch: bool) -> None:
    head, _, rest = ref.partition(".")
    if head == "param":
        if rest not in params:
            raise PlaybookError(path, field, f"{{{ref}}} names no declared parameter")
    elif head in ("target", "targets"):
        if head == "targets" and not batch:
            raise PlaybookError(path, field, "{targets.*} is only allowed in the batch_member")
        if rest not in _TARGET_FIELDS and not rest.startswith(_TARGET_PREFIXES):
            raise PlaybookError(path, field, f"{{{ref}}} is not a resource field")
    elif ref not in ("date", "account_id", "region"):
        raise PlaybookError(path, field, f"unknown placeholder {{{ref}}}")


def load_playbook(path: Path) -> LoadedPlaybook:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlaybookError(path, "(file)", exc.strerror or str(exc)) from None
    if len(raw) > MAX_PLAYBOOK_BYTES:
        raise PlaybookError(path, "(file)", f"larger than {MAX_PLAYBOOK_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PlaybookError(path, "(file)", "not UTF-8 text") from None
    return LoadedPlaybook(parse_playbook(text, path), path, hashlib.sha256(raw).hexdigest())


def load_playbooks(directory: Path) -> list[LoadedPlaybook]:
    """Every ``*.yaml`` in ``directory``, sorted by id. The first bad file stops the load."""
    if not directory.is_dir():
        raise PlaybookError(directory, "(directory)", "playbook directory not found")
    loaded = [load_playbook(p) for p in sorted(directory.glob("*.yaml"))]
    if not loaded:
        raise PlaybookError(directory, "(directory)", "no *.yaml playbooks")
    return loaded


def default_playbook_dir() -> Path:
    """The repository's ``playbooks/`` (or the bundle's copy); ``CLOUDOPS_PLAYBOOKS`` overrides."""
    import os

    from agent.bundle import bundled_path

    if env := os.environ.get("CLOUDOPS_PLAYBOOKS"):
        return Path(env)
    return bundled_path("playbooks")
