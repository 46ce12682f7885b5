"""Which identified resources the prompt names, and which account or region it points at.

The client identified resources in its estate; the prompt decides which of them are targets. A name
counts as mentioned only as a whole token (``web-server-1`` does not mention ``web-server-10``).
Text the prompt carries is never turned into a target by itself: only resources the client sent can
be targets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.facts import TYPE_NOUNS as TYPE_WORDS
from agent.protocol import IdentifiedResource, UserContext
from agent.text import REGION_IN_TEXT, last_segment, normalise

_ACCOUNT_ID = re.compile(r"(?<!\d)(\d{12})(?!\d)")


def aliases(resource: IdentifiedResource) -> list[str]:
    """The spellings by which a prompt may name a resource: id, name, ARN, the tail of a URL or ARN."""
    names = {resource.resource_id, resource.name or "", resource.arn or ""}
    for value in (resource.resource_id, resource.arn or ""):
        tail = last_segment(value)
        if len(tail) >= 3:
            names.add(tail)
    return sorted((n for n in names if n), key=len, reverse=True)


def _find(alias: str, text: str, *, spaced: bool = False) -> re.Match[str] | None:
    """The alias as a whole token. ``spaced`` (a resource's name): a dash or underscore in it may be
    typed as a space ("payments queue" names payments-queue; "payments queue dlq" names
    payments-queue-dlq, the longer mention)."""
    pattern = re.escape(normalise(alias))
    if spaced:
        pattern = pattern.replace("_", "[-_ ]").replace(r"\-", "[-_ ]")
    return re.search(r"(?<![\w-])" + pattern + r"(?![\w-]|\.\w)", text)


@dataclass
class Mention:
    resource: IdentifiedResource
    alias: str
    start: int
    end: int


def find_mentions(prompt: str, resources: list[IdentifiedResource]) -> list[Mention]:
    """Resources named in the prompt, longest alias first, with overlapping shorter matches dropped."""
    text = normalise(prompt)
    found: list[Mention] = []
    for resource in resources:
        for alias in aliases(resource):
            match = _find(alias, text) or (_find(alias, text, spaced=True) if alias == resource.name else None)
            if match:
                found.append(Mention(resource, alias, match.start(), match.end()))
                break
    # A mention inside a longer mention of another resource does not count ("db" inside "orders-db").
    kept = []
    for m in found:
        if not any(o is not m and o.start <= m.start and m.end <= o.end and (o.end - o.start) > (m.end - m.start) for o in found):
            kept.append(m)
    # A member named after its group (the instances an ASG launches carry the ASG's Name tag) is not
    # what "web-asg" means when the group itself was identified too.
    return [m for m in kept if not _member_of_same_name(m, kept)]


# Relations that make a resource the dependent side: an instance in an Auto Scaling group, a volume
# attached to an instance. Such a resource often carries its parent's name.
_DEPENDENT_ON = ("autoscaling_group", "attached_to")


def _member_of_same_name(m: Mention, mentions: list[Mention]) -> bool:
    parents = {v for key in _DEPENDENT_ON for v in m.resource.relations.get(key, [])}
    return any(other is not m and normalise(other.alias) == normalise(m.alias)
               and (other.resource.resource_id in parents or other.resource.name in parents)
               for other in mentions)


def masked_prompt(prompt: str, mentions: list[Mention]) -> str:
    """The prompt with every mentioned name replaced by its type noun: 'stop pg-main' -> 'stop database'.

    Names are noise to the classifier ("web-server-1" is not a verb); their type is signal.
    """
    text = normalise(prompt)
    for m in sorted(mentions, key=lambda m: m.start, reverse=True):
        text = text[: m.start] + TYPE_WORDS.get(m.resource.resource_type, "resource") + text[m.end:]
    return text


@dataclass
class Hints:
    regions: set[str]
    accounts: set[str]  # account ids the prompt points at
    phrases: list[str] = field(default_factory=list)  # the words that said so ("in staging")


def without_hints(text: str, hints: Hints) -> str:
    """Drop "in staging" / "us-east-1" from text for the classifier: where is not what."""
    for phrase in sorted(hints.phrases, key=len, reverse=True):
        text = re.sub(r"(?:\b(?:in|on|from|for|of)\s+)?(?:the\s+)?(?<![\w-])" + re.escape(phrase)
                      + r"(?![\w-])(?:\s+(?:account|env|environment|region))?", " ", text)
    return re.sub(r"\s+", " ", text).strip()


ACCOUNT_ALIASES: dict[str, tuple[str, ...]] = {
    "production": ("prod", "prd"), "staging": ("stg", "stage"), "development": ("dev",), "dev": ("development",),
}


def find_hints(prompt: str, user_context: UserContext, resources: list[IdentifiedResource]) -> Hints:
    """Region names, 12-digit account ids and account names ("in staging") found in the prompt."""
    text = normalise(prompt)
    regions = set(REGION_IN_TEXT.findall(text))
    accounts = set(_ACCOUNT_ID.findall(text))
    phrases = [*regions, *accounts]
    known: dict[str, str] = {}
    for account in user_context.aws_accounts:
        if account.account_id:
            known[account.name.lower()] = account.account_id
            if account.profile:
                known.setdefault(account.profile.lower(), account.account_id)
    for r in resources:
        if r.account_name and r.account_id:
            known.setdefault(r.account_name.lower(), r.account_id)
    # Operators' short names for the usual account names ("in stg", "on prd").
    for name, aliases in ACCOUNT_ALIASES.items():
        if name in known:
            for alias in aliases:
                known.setdefault(alias, known[name])
    # "media-preprod" is also called "preprod": a part of an account name that no other account shares.
    parts: dict[str, set[str]] = {}
    for name, account_id in known.items():
        for part in re.split(r"[-_\s]+", name):
            if len(part) >= 2 and part != name:
                parts.setdefault(part, set()).add(account_id)
    for part, ids in parts.items():
        if len(ids) == 1 and part not in known:
            known[part] = next(iter(ids))
    for name, account_id in known.items():
        if re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", text):
            accounts.add(account_id)
            phrases.append(name)
    return Hints(regions, accounts, phrases)
