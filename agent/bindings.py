"""Placeholders in playbook parameter bindings: ``{target.resource_id}``, ``{param.count}``, ``{date}``.

A deliberately tiny language (no expressions, no code): a binding either is exactly one placeholder,
in which case the bound value keeps its type (an integer stays an integer, a list stays a list), or a
string with placeholders inside, which renders to a string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_:\-]+)*)\}")


class BindingError(ValueError):
    """A placeholder could not be resolved (a missing resource field or prompt value)."""

    def __init__(self, ref: str, message: str):
        self.ref = ref
        super().__init__(message)


def placeholders(value: Any) -> list[str]:
    """Every placeholder reference inside a binding, recursively."""
    if isinstance(value, str):
        return _PLACEHOLDER.findall(value)
    if isinstance(value, list):
        return [ref for item in value for ref in placeholders(item)]
    if isinstance(value, Mapping):
        return [ref for item in value.values() for ref in placeholders(item)]
    return []


def resolve(value: Any, scope: Mapping[str, Any]) -> Any:
    """Resolve a binding against ``scope`` (keys: target, targets, param, date, account_id, region)."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return lookup(whole.group(1), scope)
        return _PLACEHOLDER.sub(lambda m: str(lookup(m.group(1), scope)), value)
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            resolved = resolve(item, scope)
            # "{targets.resource_id}" inside a list spreads into it.
            if isinstance(item, str) and item.startswith("{targets.") and isinstance(resolved, list):
                out.extend(resolved)
            else:
                out.append(resolved)
        return out
    if isinstance(value, Mapping):
        return {k: resolve(v, scope) for k, v in value.items()}
    return value


def lookup(ref: str, scope: Mapping[str, Any]) -> Any:
    head, _, rest = ref.partition(".")
    if head not in scope:
        raise BindingError(ref, f"{{{ref}}} is not available here")
    node = scope[head]
    if not rest:
        if node is None:
            raise BindingError(ref, f"{{{ref}}} has no value")
        return node
    if head == "targets":
        return [_walk(item, rest, ref) for item in node]
    return _walk(node, rest, ref)


def _walk(node: Any, path: str, ref: str) -> Any:
    # attributes.* and tags.* keys may themselves contain dots or colons: take the remainder whole.
    first, _, remainder = path.partition(".")
    value = node.get(first) if isinstance(node, Mapping) else getattr(node, first, None)
    if remainder:
        if first in ("attributes", "tags", "constraints") and isinstance(value, Mapping):
            value = value.get(remainder)
        else:
            return _walk(value, remainder, ref) if value is not None else _missing(ref)
    if value is None or value == "":
        return _missing(ref)
    return value


def _missing(ref: str) -> Any:
    raise BindingError(ref, f"{{{ref}}} has no value")
