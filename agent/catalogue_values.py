"""Values for a catalogue entry's members, read from the prompt and checked by botocore.

Only what the prompt states is taken, and taken whole (a quoted message with its apostrophes, a name with
its dashes and semicolons); nothing is made up. A value is tied to a member by what the prompt says around
it: the member's own words ("cidr block 10.20.0.0/16", "timeout of image-resizer to 30"), the shape of an
id (sg-0123... is a security group id, so GroupId), "named X" for the name of what the call creates, the
value right after the object ("delete key pair old-laptop"), an enum's own spelling ("gp3"), key=value tags.
Whatever botocore's validation refuses is dropped (the planner then asks for that member, naming it).

Members that name a resource the estate tracks are never read here: they come from identified resources
only (``agent.catalogue.Binding``), as the client's verification requires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name

from agent import aws_models
from agent.catalogue import CatalogueEntry
from agent.text import normalise

# A value token: kept whole (no cut at ' or ; or $): only whitespace and the sentence's trailing
# punctuation end it.
_VALUE = re.compile(r"[^\s,]+")
_QUOTED = re.compile(r"\"([^\"]{1,4000})\"|“([^”]{1,4000})”|`([^`]{1,4000})`|(?<![\w])'((?:[^']|'(?=\w)){1,4000})'(?![\w])")
_TAG_PAIR = re.compile(r"(?<![\w.:/=!-])([A-Za-z][\w.:/+@-]{0,127})\s*=\s*([^\s,;]{0,256})")
_AZ = re.compile(r"^[a-z]{2}(?:-gov)?-[a-z]+-\d[a-z]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
_NUMBER = re.compile(r"^\d+$")
_NAMING = re.compile(r"(?:named|called|name(?:d)?\s+(?:it\s+)?|as)\s*$")
# What an id's shape names, as words of the member that takes it (SecurityGroup "GroupId", "ImageId").
_ID_MEMBER_WORDS: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(r"^sg-[0-9a-f]{8,17}$"), ("group",)), (re.compile(r"^ami-[0-9a-f]{8,17}$"), ("image",)),
    (re.compile(r"^snap-[0-9a-f]{8,17}$"), ("snapshot",)), (re.compile(r"^eipalloc-[0-9a-f]{8,17}$"), ("allocation",)),
    (re.compile(r"^eni-[0-9a-f]{8,17}$"), ("interface",)), (re.compile(r"^subnet-[0-9a-f]{8,17}$"), ("subnet",)),
    (re.compile(r"^vpc-[0-9a-f]{8,17}$"), ("vpc",)), (re.compile(r"^igw-[0-9a-f]{8,17}$"), ("gateway",)),
    (re.compile(r"^nat-[0-9a-f]{8,17}$"), ("gateway",)), (re.compile(r"^rtb-[0-9a-f]{8,17}$"), ("table",)),
    (re.compile(r"^lt-[0-9a-f]{8,17}$"), ("template",)), (re.compile(r"^sir-[0-9a-z]{8}$"), ("request",)),
    (re.compile(r"^pcx-[0-9a-f]{8,17}$"), ("connection",)), (re.compile(r"^acl-[0-9a-f]{8,17}$"), ("acl",)),
]
_SCALARS = ("string", "integer", "long", "boolean", "double", "float")
_FILLERS = frozenset({"to", "of", "=", ":", "is", "as", "at", "for", "the", "a", "an", "with", "be", "§"})


@dataclass
class Values:
    found: dict[str, Any] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)   # member -> why botocore refused the value said


def _words(member: str) -> list[str]:
    return xform_name(member, " ").split()


def _clean(token: str) -> str:
    """A token as a value: the sentence's own trailing punctuation is not part of it."""
    return token.rstrip(".!?:;)") if not token.startswith(("'", '"')) else token


def _tokens(text: str) -> list[tuple[int, str]]:
    return [(m.start(), _clean(m.group(0))) for m in _VALUE.finditer(text)]


def _after(text: str, phrase: str, limit: int = 4) -> list[str]:
    """Up to ``limit`` tokens after ``phrase`` (whole words), skipping fillers."""
    match = re.search(r"(?<![\w-])" + re.escape(phrase) + r"s?(?![\w-])", text)
    if not match:
        return []
    out = []
    for _, token in _tokens(text[match.end():])[: limit + 3]:
        if token.lower() in _FILLERS:
            continue
        out.append(token)
        if len(out) >= limit:
            break
    return out


def _is_value(token: str) -> bool:
    """Looks like a name or id rather than a word: it has a digit, a dash, a dot, an underscore or a slash."""
    return bool(re.search(r"[\d_./:@-]", token)) and not token.startswith("§")


def _shape(entry: CatalogueEntry, member: str):
    return aws_models.input_members(entry.service, entry.operation).get(member)


def extract(entry: CatalogueEntry, prompt: str, value_text: str, bound: set[str], hints: list[str] = ()) -> Values:
    """The values the prompt gives for ``entry``'s members that no resource binds (``bound``).

    ``value_text`` is the prompt with the targets' own names replaced by a sentinel (a name is never a
    value) and the account/region hints left in; ``prompt`` the original, for quoted text."""
    members = aws_models.input_members(entry.service, entry.operation)
    free = [m for m in members if m not in bound and members[m].type_name in _SCALARS + ("list", "map")]
    text = value_text
    low = normalise(text)
    found: dict[str, Any] = {}
    used: set[str] = set(hints)

    def take(member: str, value: Any, token: str | None = None) -> None:
        if member not in found and (token is None or token not in used):
            found[member] = value
            if token is not None:
                used.add(token)

    # Quoted text: a message for a message member, else the name of what the call makes.
    quoted = next((next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(prompt)), None)
    if quoted is not None:
        target = next((m for m in free if re.search(r"(Message|Body|Subject|Description)$", m)
                       and members[m].type_name == "string"), None) or _name_member(entry, free, members)
        if target is not None:
            take(target, quoted, quoted)
            low = low.replace(normalise(quoted), " ")
    tokens = [t for _, t in _tokens(low)]
    raw_tokens = [t for _, t in _tokens(text)]
    # Tags: key=value pairs.
    pairs = [(k, v) for k, v in _TAG_PAIR.findall(text) if v]
    tag_member = next((m for m in free if m.lower() in ("tags", "tagging") or m == "Tags"), None)
    if pairs and tag_member is not None:
        shape = members[tag_member]
        if shape.type_name == "map":
            take(tag_member, {k: v for k, v in pairs})
        elif shape.type_name == "list":
            take(tag_member, [{"Key": k, "Value": v} for k, v in pairs])
        used.update(f"{k}={v}".lower() for k, v in pairs)
    # Ids by their shape.
    for token in raw_tokens:
        for pattern, words in _ID_MEMBER_WORDS:
            if pattern.match(token):
                member = next((m for m in free if set(words) & {w.lower() for w in _words(m)}
                               and re.search(r"Ids?$", m)), None)
                if member is not None:
                    take(member, [token] if members[member].type_name == "list" else token, token.lower())
    # Availability zones and e-mail addresses.
    for token in raw_tokens:
        if _AZ.match(token) and "AvailabilityZone" in free:
            take("AvailabilityZone", token, token)
        if _EMAIL.match(token) and "Endpoint" in free:
            take("Endpoint", token, token.lower())
    # A member's own words followed by its value ("cidr block 10.20.0.0/16", "retention period to 7").
    for member in free:
        if member in found:
            continue
        shape = members[member]
        words = " ".join(_words(member))
        candidates = _after(low, words) or (_after(low, _words(member)[-1]) if len(_words(member)) > 1 else [])
        for token in candidates:
            if token in used:
                continue
            if shape.type_name in ("integer", "long") and _NUMBER.match(token):
                take(member, int(token), token)
                break
            if shape.type_name == "string" and (_is_value(token) or shape.enum):
                take(member, _original(token, raw_tokens), token)
                break
            if shape.type_name == "list" and getattr(shape.member, "type_name", "") == "string" and _is_value(token):
                take(member, [_original(token, raw_tokens)], token)
                break
    # An enum's own spelling.
    for member in free:
        shape = members[member]
        enum = getattr(shape, "enum", None) or []
        if member in found or not enum:
            continue
        spelled = {e.lower().replace("_", "-"): e for e in enum}
        hit = [spelled[t.replace("_", "-")] for t in tokens if t.replace("_", "-") in spelled and t not in used]
        if len(set(hit)) == 1:
            take(member, hit[0], hit[0].lower())
    # "named X" / "called X", then the value right after the object: the name of what the call makes, or
    # of what it acts on.
    name_member = _name_member(entry, free, members)
    if name_member is not None and name_member not in found:
        value = _named_value(low, raw_tokens, used) or _value_after_object(entry, low, raw_tokens, used)
        if value is not None:
            shape = members[name_member]
            take(name_member, [value] if shape.type_name == "list" else value, value.lower())
    return _validated(entry, found)


def _original(token: str, raw_tokens: list[str]) -> str:
    """The token as the operator typed it (case kept): names and ids are case-sensitive."""
    return next((t for t in raw_tokens if t.lower() == token), token)


def _name_member(entry: CatalogueEntry, free: list[str], members: dict) -> str | None:
    """The member that names what the call makes or acts on: the created one, else the first required
    string (or string list) member whose name ends in Name/Id/Identifier."""
    if entry.creates and entry.creates in free:
        return entry.creates
    naming = re.compile(r"(Name|Names|Id|Ids|Identifier|Identifiers|^name)$")
    # Required members first, then optional ones whose words name the call's object (DeleteKeyPair's KeyName).
    head = {w.rstrip("s") for w in entry.head}
    optional = [m for m in members if m not in entry.required
                and head & {w.lower().rstrip("s") for w in _words(m)}]
    for member in [*entry.required, *optional]:
        if member in free and naming.search(member):
            shape = members[member]
            if shape.type_name == "string" or (shape.type_name == "list" and shape.member.type_name == "string"):
                return member
    return None


def _named_value(low: str, raw_tokens: list[str], used: set[str]) -> str | None:
    match = re.search(r"(?<![\w-])(?:named|called)\s+(\S+)", low)
    if match:
        token = _clean(match.group(1))
        if token not in used and not token.startswith("§"):
            return _original(token, raw_tokens)
    return None


def _value_after_object(entry: CatalogueEntry, low: str, raw_tokens: list[str], used: set[str]) -> str | None:
    """'delete the key pair old-laptop': the first value-like token after the object's last word."""
    if not entry.head:
        return None
    last = entry.head[-1].rstrip("s")
    match = re.search(r"(?<![\w-])" + re.escape(last) + r"s?(?![\w-])", low)
    if not match:
        return None
    for _, token in _tokens(low[match.end():])[:3]:
        if token in _FILLERS:
            continue
        if _is_value(token) and token not in used:
            return _original(token, raw_tokens)
        break
    return None


def _validated(entry: CatalogueEntry, found: dict[str, Any]) -> Values:
    """Keep what botocore accepts; a refused value is reported by member (the planner asks for it)."""
    out = Values()
    for member, value in found.items():
        try:
            coerced = aws_models.coerce_parameters(entry.service, entry.operation, {member: value})
        except (ValueError, TypeError) as exc:
            out.refused[member] = str(exc)
            continue
        problems = [p for p in aws_models.validate_parameters(entry.service, entry.operation, coerced)
                    if not p.startswith("Missing required parameter")]
        if problems:
            out.refused[member] = problems[0]
        else:
            out.found[member] = coerced[member]
    return out
