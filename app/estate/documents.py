"""One normalised document per AWS resource: what the sync engine stores, the lookup searches and the
context builder sends (as an ``IdentifiedResource``).

The texts the index reads and the content hash are derived here and only here, so a change in how a
resource reads is a change in one place:

* ``text`` (:func:`words_text`): every word an operator may type about the resource (type nouns, name,
  service, account, region, state, engine, tags); the BM25 words of the index, written with the listing.
* :func:`dense_text`: a short text (type, name, engine, description, tag values) for the meaning vector.
  Short, because embedding is the slow part of a sync (its cost grows with the tokens), and without the
  state or message counts, so that a resource that only changed state keeps its vector.

The hash excludes the sync time (``synced_at``), so that an unchanged resource is never written again.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from agent.facts import TYPE_NOUNS, is_production
from agent.protocol import RESOURCE_TYPES, IdentifiedResource

PERMISSIONS_UNKNOWN: dict[str, Any] = {"status": "unknown", "reason": "not derived from IAM policies"}


class ResourceDocument(BaseModel):
    id: str = Field(description="Stable id: the ARN (or an ARN-shaped id where AWS has none).")
    arn: str
    resource_type: str
    service: str
    resource_id: str = Field(description="The API identifier operations take.")
    name: str
    account_id: str
    account_name: str
    region: str
    state: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)
    relations: dict[str, list[str]] = Field(default_factory=dict)
    permissions: dict[str, Any] = Field(default_factory=lambda: dict(PERMISSIONS_UNKNOWN))
    constraints: dict[str, Any] = Field(default_factory=dict)
    text: str = ""
    content_hash: str = ""
    synced_at: datetime | None = Field(default=None, description="When this client last read the resource from "
                                       "AWS (its scope's last successful sync); not part of the content hash.")

    def finalise(self) -> "ResourceDocument":
        """Fill ``text`` and ``content_hash`` from the other fields."""
        self.text = words_text(self)
        body = self.model_dump(exclude={"content_hash", "synced_at"})
        self.content_hash = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        return self

    def to_identified(self, match_score: float | None = None, why: str | None = None) -> IdentifiedResource:
        return IdentifiedResource(
            resource_type=self.resource_type, resource_id=self.resource_id, name=self.name, arn=self.arn,
            account_id=self.account_id, account_name=self.account_name, region=self.region,
            current_state=self.state, engine=self.attributes.get("engine"), multi_az=self.attributes.get("multi_az"),
            tags=self.tags, attributes=self.attributes, relations=self.relations,
            available_permissions=list(self.permissions.get("allowed", [])), constraints=self.constraints,
            match_score=match_score, match_reason=why, synced_at=self.synced_at,
        )


def make_document(*, resource_type: str, arn: str, resource_id: str, name: str | None, account_id: str,
                  account_name: str, region: str, state: str | None = None, tags: dict[str, str] | None = None,
                  attributes: dict[str, Any] | None = None, relations: dict[str, list[str]] | None = None,
                  constraints: dict[str, Any] | None = None) -> ResourceDocument:
    """The one constructor collectors use: drops empty values so hashes do not churn on None vs absent."""
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None and v != "" and v != []}
    return ResourceDocument(
        id=arn, arn=arn, resource_type=resource_type, service=RESOURCE_TYPES[resource_type],
        resource_id=resource_id, name=name or resource_id, account_id=account_id, account_name=account_name,
        region=region, state=(state or None), tags=dict(sorted((tags or {}).items())), attributes=attrs,
        relations={k: sorted(v) for k, v in (relations or {}).items()},
        constraints={k: v for k, v in (constraints or {}).items() if v is not None},
    ).finalise()


def tags_from_list(items: list[dict[str, str]] | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    """AWS returns tags as [{Key, Value}] (or [{key, value}]); documents keep a plain mapping."""
    return {str(t.get(key)): str(t.get(value, "")) for t in (items or []) if t.get(key) is not None}


_ENGINE_WORDS = {"postgres": "postgresql postgres pg", "aurora-postgresql": "aurora postgresql postgres pg",
                 "mysql": "mysql", "aurora-mysql": "aurora mysql", "mariadb": "mariadb mysql",
                 "docdb": "documentdb docdb mongodb", "neptune": "neptune graph"}


# "rotateDbCredentials", "OrdersApiTaskRole", "dev_sandbox_x", "kestrel.prd.pod": names that hide their words
# from a word index (BM25 splits on punctuation, never inside camelCase).
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NAME_SEPARATORS = re.compile(r"[_.:/]+")


def name_words(name: str) -> str:
    """The words of a name written in camelCase, snake_case or with dots, lowercased ("rotateDbCredentials"
    -> "rotate db credentials"); "" when the name reads as words already (hyphens are read by every index)."""
    spaced = _NAME_SEPARATORS.sub(" ", _CAMEL_BOUNDARY.sub(" ", name)).lower().strip()
    return "" if spaced.replace(" ", "-") == name.lower() or spaced == name.lower() else spaced


def words_text(doc: ResourceDocument) -> str:
    """What the words index (BM25) sees: type words, name, where, state, engine facts, tags and description.

    Written for the queries operators type ("production postgres database", "the payments queue"),
    so synonyms of the type and engine are spelled out.
    """
    noun = TYPE_NOUNS.get(doc.resource_type, doc.resource_type)
    parts = [f"{noun} {doc.name} {name_words(doc.name)}".rstrip(), f"{doc.service} {doc.resource_type.replace('_', ' ')}",
             f"account {doc.account_name} {doc.account_id}", f"region {doc.region}"]
    if doc.state:
        parts.append(f"state {doc.state}")
    engine = doc.attributes.get("engine")
    if engine:
        parts.append(f"engine {_ENGINE_WORDS.get(str(engine), engine)} {doc.attributes.get('engine_version', '')}".strip())
    if doc.attributes.get("multi_az"):
        parts.append("multi-az")
    if doc.attributes.get("serverless_v2") or doc.attributes.get("engine_mode") == "serverless":
        parts.append("serverless")  # Aurora Serverless (v1's engine mode, v2's capacity range)
    for key in ("instance_class", "instance_type", "runtime", "launch_type", "platform"):
        if doc.attributes.get(key):
            parts.append(f"{key.replace('_', ' ')} {doc.attributes[key]}")
    probe = IdentifiedResource(resource_type=doc.resource_type, resource_id=doc.resource_id, tags=doc.tags,
                               account_name=doc.account_name)
    if is_production(probe):
        parts.append("production prod")
    if doc.tags:
        parts.append("tags " + " ".join(f"{k}={v}" for k, v in doc.tags.items()))
    description = doc.attributes.get("description")
    if description and isinstance(description, str):  # what it is for, in its owner's words ("receipt validation")
        parts.append(description[:300])
    return "; ".join(parts)


# Attributes that say what a resource is in words (not classes, sizes, counts or times).
_MEANING_ATTRIBUTES = ("description", "runtime")


def dense_text(doc: ResourceDocument) -> str:
    """The short text of the meaning vector: type noun and name, engine, description, production, tag values.

    Kept short because embedding time grows with the tokens and is most of a full sync (this text has
    ~17 tokens where the words text has ~60; tag keys and instance classes were dropped after measuring
    no change on the lookup evaluation, 130/134 either way, for 19% fewer tokens); without state, account,
    region or counts, which the filters and the words index answer, so that a change of state or of a
    message count never costs an embedding. A resource is embedded again only when this text changes
    (:func:`dense_hash`).
    """
    noun = TYPE_NOUNS.get(doc.resource_type, doc.resource_type)
    parts = [f"{noun} {doc.name} {name_words(doc.name)}".rstrip()]
    engine = doc.attributes.get("engine")
    if engine:
        parts.append(_ENGINE_WORDS.get(str(engine), str(engine)))
    for key in _MEANING_ATTRIBUTES:
        value = doc.attributes.get(key)
        if value and isinstance(value, str):
            parts.append(value[:120])
    probe = IdentifiedResource(resource_type=doc.resource_type, resource_id=doc.resource_id, tags=doc.tags,
                               account_name=doc.account_name)
    if is_production(probe):
        parts.append("production")
    if doc.tags:
        parts.append(" ".join(str(v) for v in doc.tags.values()))
    return "; ".join(parts)


def dense_hash(doc: ResourceDocument) -> str:
    """Which text a stored meaning vector was made from: equal hashes, no new embedding."""
    return hashlib.sha256(dense_text(doc).encode("utf-8")).hexdigest()[:32]
