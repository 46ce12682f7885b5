"""The one seam to botocore's service models: operation lookup, parameter coercion and validation,
and rendering of the equivalent AWS CLI command.

Nothing here calls AWS. Keeping all knowledge of botocore shapes in one module means the planner,
the playbook loader and the tests agree on what a valid call is.
"""

from __future__ import annotations

import json
import shlex
from functools import lru_cache
from typing import Any

import botocore.session
from botocore import xform_name
from botocore.exceptions import ParamValidationError, UnknownServiceError
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

# The AWS CLI names a few services differently from the API.
_CLI_SERVICE = {"s3": "s3api"}
# Operations whose output is a stream: the CLI takes the output file as a positional argument.
_STREAMING_OUTFILE_DEFAULT = "response.json"


# Waiters botocore lacks; the executor polls these itself (same shape as botocore's waiter models).
CUSTOM_WAITERS: dict[tuple[str, str], dict[str, str]] = {
    ("rds", "db_instance_stopped"): {"operation": "DescribeDBInstances", "argument": "DBInstances[].DBInstanceStatus",
                                     "expected": "stopped"},
    ("rds", "db_cluster_stopped"): {"operation": "DescribeDBClusters", "argument": "DBClusters[].Status",
                                    "expected": "stopped"},
}


class UnknownOperation(LookupError):
    """The service or operation does not exist in botocore's models."""


@lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@lru_cache(maxsize=64)
def _service_model(service: str):
    try:
        return _session().get_service_model(service)
    except UnknownServiceError as exc:
        raise UnknownOperation(f"unknown AWS service {service!r}") from exc


def operation_model(service: str, operation: str) -> OperationModel:
    """The botocore model of ``service``'s ``operation`` (API name, e.g. StopDBInstance)."""
    model = _service_model(service)
    if operation not in model.operation_names:
        raise UnknownOperation(f"{service} has no operation {operation!r}")
    return model.operation_model(operation)


def input_members(service: str, operation: str) -> dict[str, Shape]:
    shape = operation_model(service, operation).input_shape
    return dict(shape.members) if shape is not None else {}


def required_members(service: str, operation: str) -> list[str]:
    shape = operation_model(service, operation).input_shape
    return list(shape.required_members) if shape is not None else []


@lru_cache(maxsize=64)
def waiter_names(service: str) -> frozenset[str]:
    """botocore's waiters for ``service`` in snake_case, plus our custom ones."""
    try:
        names = {xform_name(n) for n in _session().get_waiter_model(service).waiter_names}
    except Exception:  # noqa: BLE001 - botocore raises several types for "no waiters"
        names = set()
    return frozenset(names | {name for (svc, name) in CUSTOM_WAITERS if svc == service})


def is_read_only(operation: str) -> bool:
    """A conservative verb check used to cross-check playbooks' read_only flags."""
    return operation.startswith(("Describe", "List", "Get", "Head"))


def coerce(shape: Shape, value: Any) -> Any:
    """Turn a bound value (often a string from a template) into the type the shape expects."""
    kind = shape.type_name
    if value is None:
        return None
    if kind in ("integer", "long"):
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
    if kind in ("double", "float"):
        return float(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    if kind == "list":
        items = value if isinstance(value, list) else [value]
        return [coerce(shape.member, item) for item in items]
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: coerce(members[k], v) if k in members else v for k, v in value.items()}
    if kind == "map" and isinstance(value, dict):
        return {str(k): coerce(shape.value, v) for k, v in value.items()}
    if kind == "blob":
        return value if isinstance(value, (bytes, str)) else json.dumps(value)
    if kind == "string":
        return value if isinstance(value, str) else str(value)
    return value


def coerce_parameters(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    members = input_members(service, operation)
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name not in members:
            raise ValueError(f"{service}.{operation} has no parameter {name!r}")
        out[name] = coerce(members[name], value)
    return out


def validate_parameters(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """botocore's own validation; returns the problems as readable lines (empty when valid)."""
    shape = operation_model(service, operation).input_shape
    if shape is None:
        return [] if not params else [f"{operation} takes no parameters"]
    report = ParamValidator().validate(params, shape)
    if not report.has_errors():
        return []
    return [line.strip() for line in report.generate_report().splitlines() if line.strip()]


def check_parameters(service: str, operation: str, params: dict[str, Any]) -> None:
    problems = validate_parameters(service, operation, params)
    if problems:
        raise ParamValidationError(report="; ".join(problems))


def cli_service_name(service: str) -> str:
    return _CLI_SERVICE.get(service, service)


def cli_operation_name(operation: str) -> str:
    return xform_name(operation, "-")


def _cli_value(shape: Shape, value: Any) -> list[str]:
    kind = shape.type_name
    if kind == "list" and shape.member.type_name in ("string", "integer", "long") and isinstance(value, list):
        return [str(item) for item in value]
    if kind in ("structure", "map", "list"):
        return [json.dumps(value, separators=(",", ":"), sort_keys=True)]
    if kind == "blob" and isinstance(value, bytes):
        return [value.decode("utf-8", "replace")]
    return [str(value)]


def _streaming_output(op: OperationModel) -> bool:
    """The CLI writes streaming output (lambda invoke, s3api get-object) to a positional outfile."""
    return bool(op.has_streaming_output)


def render_cli(service: str, operation: str, params: dict[str, Any], region: str,
               profile: str | None = None) -> list[str]:
    """The argv of the AWS CLI call equivalent to ``operation(**params)``.

    Always pins ``--region`` and, when known, ``--profile``: operators asked peers for exactly this,
    and it makes a copied command safe to paste in another shell.
    """
    op = operation_model(service, operation)
    members = input_members(service, operation)
    argv = ["aws", cli_service_name(service), cli_operation_name(operation)]
    for name in sorted(params, key=lambda n: (n not in (op.input_shape.required_members if op.input_shape else []), n)):
        value = params[name]
        shape = members[name]
        flag = "--" + xform_name(name, "-")
        if shape.type_name == "boolean":
            argv.append(flag if value else "--no-" + xform_name(name, "-"))
            continue
        argv.append(flag)
        argv.extend(_cli_value(shape, value))
    if _streaming_output(op):
        argv.append(_STREAMING_OUTFILE_DEFAULT)
    argv += ["--region", region]
    if profile:
        argv += ["--profile", profile]
    return argv


def command_line(argv: list[str]) -> str:
    """A copy-pasteable, shell-quoted rendering of ``argv`` (for display only; execution uses argv)."""
    return shlex.join(argv)
