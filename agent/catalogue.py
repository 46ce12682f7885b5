"""The operation catalogue: every operation of the installed botocore models of the estate's 13 services as a
plannable entry, the second tier behind the reviewed playbooks.

Why generated and not written: 52 reviewed playbooks cover the everyday requests, and outside them the planner
used to guess a neighbour ("delete an event subscription" -> DeleteDBInstance). An entry knows, from botocore
and the project's own tables only:

* what it is called: the words of its API name (DeleteEventSubscription -> verb "delete", object "event
  subscription"), its AWS CLI name, the first sentence of its documentation, its input members;
* which resource of the estate each identifier member takes (``agent.resource_refs``: DBInstanceIdentifier
  takes an rds_db_instance; the tagging members of each service take the ARN of one of its resources);
* what running it does (``agent.access_levels``): reads, sensitive reads, writes, destructive writes.

Nothing here invents a value: a required member that neither a resource nor a validated prompt value fills
becomes a question naming it (``agent.catalogue_plan``). Entries are data (``to_dict``/``from_dict``) so the
playbook index caches them in SQLite with their vectors; ``build_entries`` reads botocore once per botocore
release.
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from botocore import xform_name

from agent.access_levels import ESTATE_SERVICES, access
from agent.protocol import RESOURCE_TYPES
from agent.resource_refs import CREATES, member_type

# Bump when the way entries are derived changes: the index then rebuilds the catalogue (and re-embeds only
# the texts that changed).
CATALOGUE_VERSION = "1"
_PREPOSITIONS = frozenset({"to", "from", "for", "by", "with", "in", "on", "of", "into", "at", "as", "across",
                           "between", "within", "without"})
_TAGS = re.compile(r"<[^>]+>")
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)])\.(?:\s|$)")
MAX_SUMMARY_CHARS = 220
MAX_RETURNS = 200

# Tagging and policy members that take the ARN (or, for EC2, the id) of any resource the service owns.
_RESOURCE_MEMBERS: dict[str, dict[str, str]] = {
    "rds": {"ResourceName": "arn", "ResourceArn": "arn"},
    "lambda": {"Resource": "arn"},
    "dynamodb": {"ResourceArn": "arn"},
    "ecs": {"resourceArn": "arn"},
    "elbv2": {"ResourceArns": "arn", "ResourceArn": "arn"},
    "sns": {"ResourceArn": "arn"},
    "eks": {"resourceArn": "arn"},
    "ec2": {"Resources": "resource_id"},
}
# Members nested in a list of structures that name a resource: elbv2's Targets[].Id are instance ids.
_NESTED: dict[tuple[str, str], tuple[str, str, str]] = {
    ("elbv2", "RegisterTargets"): ("Targets", "Id", "ec2_instance"),
    ("elbv2", "DeregisterTargets"): ("Targets", "Id", "ec2_instance"),
    ("elbv2", "DescribeTargetHealth"): ("Targets", "Id", "ec2_instance"),
}


@dataclass(frozen=True)
class Binding:
    """An input member filled from an identified resource (never from prompt text)."""

    member: str
    resource_types: tuple[str, ...]
    field: str                   # the IdentifiedResource field the value is read from: resource_id, arn, name
    is_list: bool = False        # a list member takes every target of one account and region
    inner: str | None = None     # a list of structures: [{inner: value}, ...]
    required: bool = False


@dataclass(frozen=True)
class CatalogueEntry:
    service: str
    operation: str
    verb: str                    # the API verb, lowercase: "delete"
    head: tuple[str, ...]        # the object's words before any preposition: ("event", "subscription")
    tail: tuple[str, ...]        # words after it: AddUserToGroup -> ("group",)
    summary: str                 # the first sentence of botocore's documentation
    members: tuple[str, ...]
    required: tuple[str, ...]
    bindings: tuple[Binding, ...] = ()
    access: str = "write"        # agent.access_levels encoding: read, write+destructive, read+sensitive, ...
    deprecated: bool = False
    creates: str | None = None   # the member naming the resource this call creates (a new name)
    returns: tuple[str, ...] = ()  # member names of the output (3 levels deep) and of an attribute-name enum:
    #                                what a read answers ("status" of DescribeDBInstances, "VisibilityTimeout")

    @property
    def id(self) -> str:
        return f"{self.service}.{self.operation}"

    @property
    def words(self) -> tuple[str, ...]:
        return (self.verb, *self.head, *self.tail)

    @property
    def cli(self) -> str:
        from agent.aws_models import cli_operation_name, cli_service_name

        return f"aws {cli_service_name(self.service)} {cli_operation_name(self.operation)}"

    @property
    def mutating(self) -> bool:
        return not self.access.startswith("read")

    @property
    def needs_approval(self) -> bool:
        return self.mutating or "sensitive" in self.access

    @property
    def resource_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t for b in self.bindings for t in b.resource_types))

    @property
    def required_bindings(self) -> tuple[Binding, ...]:
        return tuple(b for b in self.bindings if b.required)

    def title(self) -> str:
        return f"{self.service} {self.operation}: {self.summary}" if self.summary else f"{self.service} {self.operation}"

    def texts(self) -> list[str]:
        """What the dense index embeds: the name's words with the service, and the summary (two texts per
        entry keeps the catalogue's build within the embedding budget: ~3,500 texts at ~100-200/s)."""
        name = " ".join(self.words) + f" ({self.service})"
        return [name, self.summary] if self.summary else [name]

    def lexical_text(self) -> str:
        """What the lexical index matches: name, CLI name, summary and the input members' words."""
        members = " ".join(xform_name(m, " ") for m in self.members[:25])
        return f"{' '.join(self.words)} {self.service} {self.summary} {members}"

    def row(self, reviewed_by: list[str]) -> dict[str, Any]:
        """The entry as ``GET /v1/operations`` and ``cloudops playbooks --all --json`` list it."""
        return {"id": self.id, "service": self.service, "operation": self.operation, "cli": self.cli,
                "access": self.access, "approval": self.needs_approval, "summary": self.summary,
                "resource_types": list(self.resource_types), "required": list(self.required),
                "reviewed_by": reviewed_by}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CatalogueEntry":
        data = dict(data)
        data["bindings"] = tuple(Binding(**{**b, "resource_types": tuple(b["resource_types"])})
                                 for b in data.get("bindings", ()))
        for key in ("head", "tail", "members", "required", "returns"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


def split_name(operation: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(verb, head words, tail words) of an API name: ExportTableToPointInTime -> ("export", ("table",),
    ("point", "in", "time")). The head is what the call acts on; the tail says how or where."""
    words = xform_name(operation, " ").split()
    verb, rest = words[0], words[1:]
    cut = next((i for i, w in enumerate(rest) if w in _PREPOSITIONS and i > 0), len(rest))
    return verb, tuple(rest[:cut]), tuple(w for w in rest[cut:] if w not in _PREPOSITIONS)


def first_sentence(documentation: str) -> str:
    """The documentation's first sentence as plain text, at most MAX_SUMMARY_CHARS."""
    text = html.unescape(_TAGS.sub(" ", documentation or ""))
    text = re.sub(r"\s+", " ", text).strip()
    match = _SENTENCE_END.search(text)
    sentence = text[: match.start() + 1] if match else text
    return sentence[:MAX_SUMMARY_CHARS].strip()


def _service_types(service: str) -> tuple[str, ...]:
    return tuple(t for t, owner in RESOURCE_TYPES.items() if owner == service)


def _bindings(service: str, operation: str, shape) -> tuple[Binding, ...]:
    if shape is None:
        return ()
    required = set(shape.required_members)
    creates = CREATES.get((service, operation))
    out: list[Binding] = []
    for member, member_shape in shape.members.items():
        is_list = member_shape.type_name == "list"
        typed = member_type(service, operation, member)
        if typed is not None and member != creates:
            out.append(Binding(member, (typed[0],), typed[1], is_list=is_list, required=member in required))
            continue
        generic = _RESOURCE_MEMBERS.get(service, {}).get(member)
        if generic is not None and (member != "Resource" or operation in ("ListTags", "TagResource", "UntagResource")):
            types = _service_types(service)
            if service == "ec2":
                types = ("ec2_instance", "ec2_volume")
            out.append(Binding(member, types, generic, is_list=is_list, required=member in required))
    nested = _NESTED.get((service, operation))
    if nested is not None:
        outer, inner, rtype = nested
        out.append(Binding(outer, (rtype,), "resource_id", is_list=True, inner=inner, required=outer in required))
    return tuple(out)


def entry_for(service: str, operation: str) -> CatalogueEntry:
    """One operation's entry, from botocore's model and the project's tables."""
    from agent.aws_models import operation_model

    op = operation_model(service, operation)
    shape = op.input_shape
    verb, head, tail = split_name(operation)
    return CatalogueEntry(
        service=service, operation=operation, verb=verb, head=head, tail=tail,
        summary=first_sentence(op.documentation), members=tuple(shape.members) if shape is not None else (),
        required=tuple(shape.required_members) if shape is not None else (),
        bindings=_bindings(service, operation, shape), access=access(service, operation).encode(),
        deprecated=bool(getattr(op, "deprecated", False)), creates=CREATES.get((service, operation)),
        returns=_returns(op))


def _returns(op) -> tuple[str, ...]:
    """What a call answers: its output's member names, three levels deep, and the values of an attribute
    name enum in its input (SQS GetQueueAttributes returns a map keyed by them)."""
    names: list[str] = []

    def walk(shape, depth: int) -> None:
        if shape is None or depth == 0 or len(names) > MAX_RETURNS:
            return
        if shape.type_name == "structure":
            for name, member in shape.members.items():
                if name not in names:
                    names.append(name)
                walk(member, depth - 1)
        elif shape.type_name == "list":
            walk(shape.member, depth)
        elif shape.type_name == "map":
            walk(shape.value, depth)

    walk(op.output_shape, 3)
    if op.input_shape is not None:
        for member in op.input_shape.members.values():
            inner = member.member if member.type_name == "list" else member
            if getattr(inner, "enum", None) and re.search(r"Attribute", member.name):
                names += [e for e in inner.enum if e not in names]
    return tuple(names[:MAX_RETURNS])


def build_entries(services: tuple[str, ...] = ESTATE_SERVICES) -> list[CatalogueEntry]:
    """Every operation of ``services`` in the installed botocore, sorted by id."""
    from agent.aws_models import _service_model

    return sorted((entry_for(s, op) for s in services for op in _service_model(s).operation_names),
                  key=lambda e: e.id)


@lru_cache(maxsize=1)
def catalogue_fingerprint() -> str:
    """What the cached catalogue depends on: botocore's release, this module's derivation, the access table."""
    import hashlib

    import botocore

    from agent.access_levels import TABLE_PATH

    table = hashlib.sha256(TABLE_PATH.read_bytes()).hexdigest()[:16]
    return f"botocore-{botocore.__version__}/catalogue-{CATALOGUE_VERSION}/access-{table}"


@dataclass
class Catalogue:
    """The entries, by id and by (service, operation)."""

    entries: list[CatalogueEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_id = {e.id: e for e in self.entries}

    def get(self, service: str, operation: str) -> CatalogueEntry | None:
        return self.by_id.get(f"{service}.{operation}")

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)
