"""Choosing the targets of a plan among the resources the client identified.

The rules, in order: only resources of a type the playbook acts on; names the prompt spells out win;
an account or region named in the prompt narrows; one name matching resources in two places is a
question, not a guess; with no name spelled out, a single compatible resource is the target, and
several are a question unless the prompt asks for all of them or the client's match scores leave no
doubt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.lexicon import TYPE_NOUNS, lists_resources
from agent.mentions import Hints, Mention
from agent.protocol import Candidate, Clarification, IdentifiedResource
from agent.text import last_segment, normalise

CLEAR_MATCH_MARGIN = 0.15
_ALL = re.compile(r"(?<![\w-])(all|every|each|both)(?![\w-])")
_TAG_TERM = re.compile(r"(?<![\w.:/=!-])([a-z][\w.:/-]*)\s*=\s*([\w.:/-]+)")
_PLURALS = frozenset(n + suffix for nouns in TYPE_NOUNS.values() for n in nouns if " " not in n for suffix in ("s", "es"))


def _tag_selection(prompt: str, pool: list[IdentifiedResource]) -> list[IdentifiedResource]:
    """"stop the team=data instances": a plural (or "all") with ``key=value`` terms selects every
    identified resource whose tags carry all of them. Without a plural the terms only help the lookup."""
    text = normalise(prompt)
    terms = _TAG_TERM.findall(text)
    plural = _ALL.search(text) or any(w in _PLURALS for w in re.findall(r"[a-z]+", text))
    if not terms or not plural:
        return []
    return [r for r in pool if all(str({k.lower(): v for k, v in r.tags.items()}.get(k, "")).lower() == v
                                   for k, v in terms)]


@dataclass
class TargetChoice:
    targets: list[IdentifiedResource] = field(default_factory=list)
    clarification: Clarification | None = None
    warnings: list[str] = field(default_factory=list)


def candidate(resource: IdentifiedResource) -> Candidate:
    where = " / ".join(x for x in (resource.account_name or resource.account_id, resource.region) if x)
    return Candidate(kind="resource", label=f"{resource.display_name} ({resource.resource_type}, {where})",
                     resource_id=resource.resource_id, resource_type=resource.resource_type,
                     account_id=resource.account_id, account_name=resource.account_name, region=resource.region)


def _narrow(resources: list[IdentifiedResource], hints: Hints) -> list[IdentifiedResource]:
    out = resources
    if hints.accounts:
        out = [r for r in out if r.account_id in hints.accounts]
    if hints.regions:
        out = [r for r in out if r.region in hints.regions]
    return out


def _key(resource: IdentifiedResource) -> tuple[str, str | None, str | None, str]:
    return (resource.resource_type, resource.account_id, resource.region, resource.resource_id)


def _context_words(resource: IdentifiedResource) -> set[str]:
    """Names a prompt may use to say where a resource lives: its cluster, VPC, group (ARN tails)."""
    words = set()
    for value in resource.attributes.values():
        if isinstance(value, str) and 3 <= len(value) <= 2048:
            tail = last_segment(value)
            if len(tail) >= 3 and not tail.isdigit():
                words.add(normalise(tail))
    return words


def _by_context(prompt: str, group: list[IdentifiedResource]) -> list[IdentifiedResource]:
    """Among same-named resources, keep those whose context (e.g. "on prod-cluster") the prompt names."""
    text = normalise(prompt)
    named = [r for r in group if any(re.search(r"(?<![\w-])" + re.escape(w) + r"(?![\w-])", text)
                                     for w in _context_words(r))]
    return named or group


def choose_targets(prompt: str, resource_types: list[str], identified: list[IdentifiedResource],
                   mentions: list[Mention], hints: Hints, type_label: str, *, read_only: bool = False) -> TargetChoice:
    """``read_only``: the playbook only reads, so a request to list resources of a type ("list the
    databases in staging") takes every compatible one, as "all" does; a change never does without "all"."""
    compatible = [r for r in identified if r.resource_type in resource_types]
    if not compatible:
        others = [candidate(r) for r in identified]
        question = (f"Which {type_label} do you mean? I found none among the resources identified for this request"
                    + (" (the ones found are of other types)." if others else "."))
        return TargetChoice(clarification=Clarification(question=question, candidates=others))

    named = [m for m in mentions if m.resource.resource_type in resource_types]
    if named:
        by_alias: dict[str, list[IdentifiedResource]] = {}
        for m in named:
            by_alias.setdefault(normalise(m.alias), []).append(m.resource)
        # Resources of the same name that the client sent but the mention matched only once
        # (e.g. the same DB name in two accounts): collect every compatible resource with that alias.
        for alias in list(by_alias):
            for r in compatible:
                if r not in by_alias[alias] and alias in {normalise(a) for a in (r.resource_id, r.name or "")}:
                    by_alias[alias].append(r)
        targets: list[IdentifiedResource] = []
        for alias, group in by_alias.items():
            narrowed = _narrow(group, hints) or group
            if hints.accounts or hints.regions:
                if not _narrow(group, hints):
                    where = ", ".join(sorted(hints.accounts | hints.regions))
                    return TargetChoice(clarification=Clarification(
                        question=f"{alias} was not identified in {where}. Which one do you mean?",
                        candidates=[candidate(r) for r in group]))
            unique = {_key(r): r for r in narrowed}
            if len(unique) > 1:
                unique = {_key(r): r for r in _by_context(prompt, list(unique.values()))}
            if len(unique) > 1:
                return TargetChoice(clarification=Clarification(
                    question=f"{alias} exists in {len(unique)} places. Which one do you mean?",
                    candidates=[candidate(r) for r in unique.values()]))
            targets.extend(unique.values())
        return TargetChoice(targets=list({_key(t): t for t in targets}.values()))

    pool = _narrow(compatible, hints)
    if (hints.accounts or hints.regions) and not pool:
        return TargetChoice(clarification=Clarification(
            question=f"No identified {type_label} is in {', '.join(sorted(hints.accounts | hints.regions))}. Which one do you mean?",
            candidates=[candidate(r) for r in compatible]))
    pool = list({_key(r): r for r in pool}.values())
    if len(pool) == 1:
        return TargetChoice(targets=pool)
    tagged = _tag_selection(prompt, pool)
    if tagged:
        return TargetChoice(targets=tagged, warnings=[f"selected by the tags in the prompt: acting on {len(tagged)} "
                                                      f"resource{'s' if len(tagged) > 1 else ''}"])
    if _ALL.search(normalise(prompt)):
        return TargetChoice(targets=pool, warnings=[f"'all' in the prompt: acting on {len(pool)} resources"])
    if read_only and lists_resources(prompt):
        return TargetChoice(targets=pool, warnings=[f"a listing: reading all {len(pool)} identified {type_label}s"])
    scored = sorted(pool, key=lambda r: -(r.match_score or 0.0))
    best, second = scored[0].match_score, scored[1].match_score
    if best is not None and second is not None and best - second >= CLEAR_MATCH_MARGIN:
        return TargetChoice(targets=[scored[0]], warnings=[
            f"{scored[0].display_name} chosen as the best match ({best:.2f} vs {second:.2f}); name it to be sure"])
    return TargetChoice(clarification=Clarification(
        question=f"Several {type_label}s match. Which one do you mean?", candidates=[candidate(r) for r in pool]))
