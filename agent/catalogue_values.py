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
    free = [m for m in members if m not in bound]
    reader = _Reader(prompt, value_text, hints)
    found: dict[str, Any] = {}

    def take(member: str, value: Any, token: str | None = None) -> None:
        if member not in found and value is not None and (token is None or token not in reader.used):
            found[member] = value
            if token is not None:
                reader.used.add(token)

    # Quoted text: a message for a message member, else the name of what the call makes.
    if reader.quoted is not None:
        target = next((m for m in free if re.search(r"(Message|MessageBody|Body|Subject|Description)$", m)
                       and members[m].type_name == "string"), None) or _name_member(entry, free, members)
        if target is not None:
            take(target, reader.quoted, reader.quoted)
    # Tags (key=value pairs) and tag keys to remove.
    for member in free:
        if member.lower() in ("tags", "tagging", "tagset"):
            take(member, _tags(members[member], reader.pairs))
        elif member in ("TagKeys", "tagKeys", "Keys") and entry.verb in ("untag", "remove", "delete"):
            keys = reader.tag_keys()
            take(member, keys or None)
        if member == "Tags" and entry.verb in ("untag", "remove", "delete") and not reader.pairs \
                and members[member].type_name == "list":
            take(member, [{"Key": k} for k in reader.tag_keys()] or None)  # ec2 DeleteTags: the keys only
    if reader.pairs:
        reader.used.update(f"{k}={v}".lower() for k, v in reader.pairs)
    # Ids by their shape; availability zones; e-mail addresses.
    for token in reader.raw_tokens:
        for pattern, words in _ID_MEMBER_WORDS:
            if pattern.match(token):
                member = next((m for m in free if set(words) & {w.lower() for w in _words(m)}
                               and re.search(r"Ids?$", m)), None)
                if member is not None:
                    take(member, [token] if members[member].type_name == "list" else token, token.lower())
        arn = re.match(r"^arn:[^:]+:[^:]+:[^:]*:[^:]*:([a-z-]+)[/:]", token, re.IGNORECASE)
        if arn:  # an ARN of a kind the call takes by ARN (PolicyArn of AttachRolePolicy), or its only ARN member
            kind = arn.group(1).lower().replace("-", "")
            arns = [m for m in free if re.search(r"(Arn|ARN|Arns)$", m)]
            member = next((m for m in arns if "".join(_words(m)[:-1]).lower() == kind), None) \
                or (arns[0] if len(arns) == 1 and arns[0] in entry.required else None)
            if member is not None:
                take(member, [token] if members[member].type_name == "list" else token, token.lower())
        if _AZ.match(token) and "AvailabilityZone" in free:
            take("AvailabilityZone", token, token)
        if _EMAIL.match(token) and "Endpoint" in free:
            take("Endpoint", token, token.lower())
    # Each member by its own words (a number, a name, an on/off, a documented value), then structures whose
    # members the prompt states ("TTL ... using the attribute expires_at").
    for member in free:
        if member not in found:
            take(member, *reader.scalar(member, members[member]))
    for member in free:
        shape = members[member]
        if member in found or shape.type_name != "structure" or member.lower() in ("tags", "tagging"):
            continue
        inner = {name: value for name, sub in shape.members.items()
                 if (value := reader.scalar(name, sub)[0]) is not None}
        if inner and "Enabled" in shape.members and "Enabled" not in inner and reader.switch() is not None:
            inner["Enabled"] = reader.switch()  # "enable TTL ... using expires_at": the request's own verb
        if inner and all(req in inner for req in shape.required_members):
            take(member, inner)
    # An enum's own spelling.
    for member in free:
        shape = members[member]
        enum = _allowed_values(shape)
        if member in found or not enum or shape.type_name not in ("string", "list"):
            continue
        spelled = {e.lower().replace("_", "-"): e for e in enum}
        hit = [spelled[t.replace("_", "-")] for t in reader.tokens if t.replace("_", "-") in spelled
               and t not in reader.used]
        if len(set(hit)) == 1:
            take(member, [hit[0]] if shape.type_name == "list" else hit[0], hit[0].lower())
    # "named X" / "called X", then the value right after the object: the name of what the call makes, or
    # of what it acts on.
    name_member = _name_member(entry, free, members)
    if name_member is not None and name_member not in found:
        value = _named_value(reader.low, reader.raw_tokens, reader.used) \
            or _value_after_object(entry, reader.low, reader.raw_tokens, reader.used)
        if value is not None:
            shape = members[name_member]
            take(name_member, [value] if shape.type_name == "list" else value, value.lower())
    return _validated(entry, found)


_ON = re.compile(r"(?<![\w-])(?:enable|enabled|turn(?:ed)?\s+on|switch(?:ed)?\s+on|activate|on|with|add|protect|"
                 r"make|set|convert(?:ed)?\s+to|to)(?![\w-])")
_OFF = re.compile(r"(?<![\w-])(?:disable|disabled|turn(?:ed)?\s+off|switch(?:ed)?\s+off|deactivate|off|without|"
                  r"no|not|remove|unset|never|stop)(?![\w-])")
_DOC_CODE = re.compile(r"<code>([A-Za-z0-9_.:-]{1,40})</code>")


def _allowed_values(shape) -> list[str]:
    """A member's enum, or the values its documentation lists in <code> (sns Subscribe's Protocol)."""
    inner = shape.member if shape.type_name == "list" else shape
    enum = list(getattr(inner, "enum", None) or [])
    if enum or inner.type_name != "string":
        return enum
    doc = getattr(inner, "documentation", "") or getattr(shape, "documentation", "") or ""
    values = list(dict.fromkeys(_DOC_CODE.findall(doc)))
    return values if 2 <= len(values) <= 30 else []


class _Reader:
    """The prompt as values are read from it: its tokens, key=value pairs, quoted text, what is taken."""

    def __init__(self, prompt: str, value_text: str, hints: list[str]):
        self.quoted = next((next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(prompt)), None)
        self.text = value_text
        self.low = normalise(value_text)
        if self.quoted is not None:
            self.low = self.low.replace(normalise(self.quoted), " ")
        self.tokens = [t for _, t in _tokens(self.low)]
        self.raw_tokens = [t for _, t in _tokens(value_text)]
        self.pairs = [(k, v) for k, v in _TAG_PAIR.findall(value_text) if v]
        self.used: set[str] = {h.lower() for h in hints}
        self.fillers = _FILLERS | self.used | {w for h in self.used for w in h.split()}

    def switch(self) -> bool | None:
        """On or off, as the request's own verb says ("enable ...", "turn off ..."), or None."""
        start = self.low.strip()[:30]
        if re.match(r"(?:please\s+)?(?:enable|turn\s+on|switch\s+on|activate)\b", start):
            return True
        if re.match(r"(?:please\s+)?(?:disable|turn\s+off|switch\s+off|deactivate)\b", start):
            return False
        return None

    def tag_keys(self) -> list[str]:
        match = re.search(r"(?<![\w-])(?:the\s+)?([a-z0-9][\w.:/-]{0,127})\s+tags?(?![\w-])", self.low)
        if match and match.group(1) not in ("the", "a", "all", "its", "their", "my", "our"):
            return [_original(match.group(1), self.raw_tokens)]
        match = re.search(r"(?<![\w-])tags?\s+(?:key\s+)?([a-z0-9][\w.:/-]{0,127})", self.low)
        return [_original(match.group(1), self.raw_tokens)] if match and match.group(1) not in ("from", "on") else []

    def _after(self, phrase: str, limit: int = 5) -> list[str]:
        match = re.search(r"(?<![\w-])" + re.escape(phrase) + r"s?(?![\w-])", self.low)
        if not match:
            return []
        out = []
        for _, token in _tokens(self.low[match.end():])[: limit + 4]:
            if token in self.fillers or token in ("on", "in", "from", "by", "into", "of") or token.startswith("§"):
                continue
            out.append(token)
            if len(out) >= limit:
                break
        return out

    def _said(self, member: str) -> str | None:
        """The words of ``member`` as the prompt says them (the whole name, its distinctive first or last
        word), or None."""
        words = [w.lower() for w in _words(member) if w.lower() not in ("enable", "is", "the")]
        if not words:
            return None
        variants = [" ".join(words)]
        if len(words) > 1:
            variants += [w for w in (words[0], words[-1]) if len(w) > 3 and w not in _GENERIC_MEMBER_WORDS]
        from agent.catalogue_match import _phrases  # "multi az" -> "multiaz" on both sides

        low = _phrases(self.low)
        for phrase in variants:
            joined = _phrases(phrase)
            if re.search(r"(?<![\w-])" + re.escape(joined) + r"(?![\w-])", low):
                return joined
        return None

    def scalar(self, member: str, shape) -> tuple[Any, str | None]:
        """(value, token) of one scalar member said by its own words, or (None, None)."""
        kind = shape.type_name
        said = self._said(member)
        if said is None:
            return None, None
        if kind == "boolean":
            low = _phrases_text(self.low)
            at = low.find(said)
            before = low[max(0, at - 40): at]
            after = low[at + len(said): at + len(said) + 12]
            if _OFF.search(before) or re.match(r"\s*(?:off|disabled|false)\b", after):
                return False, None
            if _ON.search(before) or re.match(r"\s*(?:on|enabled|true)\b", after):
                return True, None
            return None, None
        for token in self._after(said):
            if token in self.used:
                continue
            if kind in ("integer", "long") and _NUMBER.match(token):
                return int(token), token
            allowed = {v.lower(): v for v in _allowed_values(shape)}
            if kind == "string" and allowed:
                if token in allowed:  # an enum or documented value is taken only as spelled
                    return allowed[token], token
                break
            if kind == "string" and (_is_value(token) or token.isalpha() and len(token) > 2
                                     and said.endswith(("name", "type", "class", "runtime", "protocol", "mode"))):
                return _original(token, self.raw_tokens), token
            if kind == "list" and getattr(shape.member, "type_name", "") == "string" and _is_value(token):
                return [_original(token, self.raw_tokens)], token
            break
        return None, None


_GENERIC_MEMBER_WORDS = frozenset({"name", "names", "id", "ids", "type", "value", "values", "count", "size", "arn",
                                   "identifier", "enabled", "configuration", "config", "settings", "status"})


def _phrases_text(text: str) -> str:
    from agent.catalogue_match import _phrases

    return _phrases(text)


def _tags(shape, pairs: list[tuple[str, str]]) -> Any:
    """key=value pairs in the member's own shape: a map, a list of {Key, Value} (or {key, value}), or S3's
    {TagSet: [...]}."""
    if not pairs:
        return None
    if shape.type_name == "map":
        return {k: v for k, v in pairs}
    if shape.type_name == "list" and shape.member.type_name == "structure":
        names = list(shape.member.members)
        key = next((n for n in names if n.lower() == "key"), None)
        value = next((n for n in names if n.lower() == "value"), None)
        return [{key: k, value: v} for k, v in pairs] if key and value else None
    if shape.type_name == "structure":
        for name, inner in shape.members.items():
            listed = _tags(inner, pairs)
            if listed is not None:
                return {name: listed}
    return None


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
        if member in free and (naming.search(member) or member == "Key"):
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
