"""Choosing the targets of a plan among the resources the client identified.

The rules, in order: only resources of a type the playbook acts on; names the prompt spells out win, and
are never replaced by another resource: a name that nothing identified answers to is said to match
nothing (with the near names offered), a mistyped one (qa-mysql01) is the resource it spells; an account
or region named in the prompt narrows, and one that contradicts where the named resource is gets a
question that says where it is; one name matching resources in two places is a question, not a guess.
With no name spelled out: a plural of names' stem ("the batch workers") takes those resources; a tag
said in words or as key=value ("for app billing", "team=data") selects; "all" takes every compatible
resource, and "everything" asks when it would leave resources of other types out; a single compatible
resource, or the client's clearly best match, is the target of a change only above an absolute match
floor; otherwise it is a question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rapidfuzz import fuzz
from rapidfuzz.distance import DamerauLevenshtein

from agent.lexicon import ENVIRONMENT_WORDS, lists_resources
from agent.mentions import Hints, Mention, named_part, refers_to, unmatched_names
from agent.prompt import ParsedPrompt, parse_prompt
from agent.protocol import Candidate, Clarification, IdentifiedResource
from agent.text import last_segment, normalise

CLEAR_MATCH_MARGIN = 0.15
# Below this match score (the client's lookup, 0..1) a resource the prompt did not name is never the
# target of a change: such a score means a few shared letters or words, not an identification. (A name
# typed exactly scores 0.5 or more; the weakest right identifications by words in the evaluation sets
# score about 0.12.)
MATCH_FLOOR = 0.10


def _tag_terms(parsed: ParsedPrompt) -> list[tuple[tuple[str, ...], str]]:
    """Tags the prompt states, as key=value or in words: (keys any of which may carry it, value)."""
    return ([((k,), v) for k, v, negated in parsed.tag_terms if not negated]
            + [(t.keys, t.value) for t in parsed.tag_phrases])


def _same_value(actual: str | None, said: str) -> bool:
    """Tag values compare case-insensitively, and environment words through each other (prod = production)."""
    if actual is None:
        return False
    a, b = actual.strip().lower(), said.strip().lower()
    return a == b or (ENVIRONMENT_WORDS.get(a) is not None and ENVIRONMENT_WORDS.get(a) == ENVIRONMENT_WORDS.get(b))


def _tagged(resource: IdentifiedResource, terms: list[tuple[tuple[str, ...], str]]) -> bool:
    tags = {k.lower(): str(v) for k, v in resource.tags.items()}
    return all(any(_same_value(tags.get(k), v) for k in keys) for keys, v in terms)


def _tag_selection(parsed: ParsedPrompt, pool: list[IdentifiedResource]) -> list[IdentifiedResource]:
    """"stop the team=data instances", "reboot team data's instances": with a plural (or "all") the tags
    select every identified resource that carries them; with a singular ("the orders app's database"),
    the one resource that does, or nothing (then the caller asks)."""
    terms = _tag_terms(parsed)
    if not terms:
        return []
    chosen = [r for r in pool if _tagged(r, terms)]
    if parsed.plural or parsed.every:
        return chosen
    return chosen if len(chosen) == 1 else []


def same_name(typed: str, name: str) -> bool:
    """Is ``typed`` the name ``name`` mistyped? Separators and case do not count, the numbers must be the
    same (main3 is not main1: numbered names are different resources), and at most one slip in the
    letters (two in a long name): qa-mysql01 is qa-mysql-01, web-sever-2 is web-server-2."""
    a, b = (re.sub(r"[-_. ]+", "", normalise(x)) for x in (typed, name))
    if re.findall(r"\d+", a) != re.findall(r"\d+", b):
        return False
    return DamerauLevenshtein.distance(a, b) <= (2 if len(b) >= 12 else 1)


def _name_tokens(name: str) -> list[str]:
    return re.findall(r"[a-z]+|\d+", normalise(name))


def abbreviates(parsed: ParsedPrompt, resource: IdentifiedResource) -> bool:
    """Does the prompt name ``resource`` by some of its name's words, in order, from its first, with all of
    its numbers ("pg main 1" for pg-instance-main1, never for pg-instance-main2) or, when it has none, with
    its last word too ("the payments dlq" for payments-queue-dlq)?"""
    name = _name_tokens(resource.display_name)
    numbers = [t for t in name if t.isdigit()]
    if len(name) < 3:
        return False
    words = _name_tokens(parsed.text)
    for i, word in enumerate(words):
        if word != name[0]:
            continue
        matched, k = [word], 1
        for typed in words[i + 1:]:
            if typed not in name[k:]:
                break
            k = name.index(typed, k) + 1
            matched.append(typed)
        if len(matched) >= len(name):
            continue  # the whole name typed with spaces: a mention already
        if numbers and len(matched) >= 3 and all(n in matched for n in numbers):
            return True
        if not numbers and len(matched) >= 2 and matched[-1] == name[-1]:
            return True
    return False


def _engine_fits(resource: IdentifiedResource, engines: list[str]) -> bool:
    """"the production postgres database": a database of another engine is not it (engine unknown: maybe)."""
    engine = str(resource.engine or resource.attributes.get("engine") or "").lower()
    return not engines or not engine or any(e in engine for e in engines)


def _stem_groups(parsed: ParsedPrompt, pool: list[IdentifiedResource]) -> dict[str, list[IdentifiedResource]]:
    """"the batch workers" -> batch-worker-1 and batch-worker-2: a plural whose singular, with the words
    before it, is the stem of two or more numbered names."""
    words = list(re.finditer(r"[a-z0-9]+", parsed.text))
    groups: dict[str, list[IdentifiedResource]] = {}
    for i, word in enumerate(words):
        plural = word.group(0)
        singular = plural[:-2] if plural.endswith("es") and not plural.endswith("ses") else plural[:-1]
        if not plural.endswith("s") or len(singular) < 3:
            continue
        for size in range(1, min(4, i + 1) + 1):
            run = [w.group(0) for w in words[i - size + 1:i]] + [singular]
            stem = "[-_ ]?".join(re.escape(w) for w in run)
            pattern = re.compile(r"^" + stem + r"(?:[-_ ]?\d+|s)$")
            members = [r for r in pool if pattern.match(normalise(r.display_name))]
            if len(members) >= 2:
                groups[" ".join(w.group(0) for w in words[i - size + 1:i + 1])] = members
    # Keep the longest phrase for a group of the same members.
    out: dict[str, list[IdentifiedResource]] = {}
    for phrase, members in sorted(groups.items(), key=lambda kv: -len(kv[0])):
        if not any({id(m) for m in members} == {id(m) for m in other} for other in out.values()):
            out[phrase] = members
    return out


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


def belongs_to(resource: IdentifiedResource, owner: IdentifiedResource) -> bool:
    """Is ``resource`` a member or a part of ``owner`` (an instance of its Auto Scaling group, a volume attached
    to it, a service in its cluster)? Read from the relations and ARN-valued attributes the client sent."""
    related = [v for values in resource.relations.values() for v in values]
    related += [v for v in resource.attributes.values() if isinstance(v, str) and (":" in v or "/" in v)]
    return any(refers_to(v, owner) for v in related)


def _where(resource: IdentifiedResource) -> str:
    return " / ".join(x for x in (resource.account_name or resource.account_id, resource.region) if x)


def _said(hints: Hints) -> str:
    """The place words of the prompt, as said: "dev", "us-east-1"."""
    words = [re.sub(r"^(?:--region[\s=]+|(?:in|on|from|for|across)\s+(?:the\s+)?)|\s+(?:account|acct|env|environment|region)$",
                    "", phrase) for phrase in hints.phrases]
    return " / ".join(dict.fromkeys(w for w in words if w)) or ", ".join(sorted(hints.accounts | hints.regions))


def _near(name: str, pool: list[IdentifiedResource], most: int = 5) -> list[IdentifiedResource]:
    """Resources whose names resemble ``name``, closest first (what to offer when it matches nothing)."""
    scored = sorted(((fuzz.ratio(normalise(name), normalise(r.display_name)), r) for r in pool), key=lambda x: -x[0])
    return [r for score, r in scored if score >= 60][:most]


def choose_targets(prompt: str, resource_types: list[str], identified: list[IdentifiedResource],
                   mentions: list[Mention], hints: Hints, type_label: str, *, read_only: bool = False,
                   parsed: ParsedPrompt | None = None) -> TargetChoice:
    """``read_only``: the playbook only reads, so a request to list resources of a type ("list the
    databases in staging") or a question about a set of them takes every compatible one, as "all" does; a
    change never does without "all". ``parsed``: the request's parsed prompt (agent.mentions.request_prompt)."""
    parsed = parsed or parse_prompt(prompt)
    compatible = [r for r in identified if r.resource_type in resource_types]
    # "purge the dlq of payments-queue": the queue's dead-letter queue, never the queue itself. agent.mentions
    # already turned a part it could find into a mention of it; an owner whose part is not here is dropped,
    # and when nothing else is named the operator is asked.
    parts = {id(m): p for m in mentions if (p := named_part(parsed, m, identified)) is not None}
    if parts:
        rest = [m for m in mentions if id(m) not in parts]
        if not rest:
            part = next(iter(parts.values()))
            owner = f"{part.owner.display_name} ({_where(part.owner)})"
            return TargetChoice(clarification=Clarification(
                question=(f"{owner} has no {part.said} in the index." if part.empty else
                          f"The {part.said} of {owner} is not among the resources identified for this request.")
                + f" Name the {type_label} itself.", candidates=[]))
        mentions = rest
    named = [m for m in mentions if m.resource.resource_type in resource_types]
    if not named:
        typed = unmatched_names(parsed, mentions)
        # A mistyped name (qa-mysql01) is the resource it spells; a name nothing answers to is said to be one.
        for word in typed:
            spelled = [r for r in compatible if same_name(word, r.display_name)]
            if spelled:
                named = [Mention(r, r.display_name, 0, 0) for r in spelled]
                break
        else:
            if typed and not mentions:
                return _no_such_name(typed[0], type_label, compatible or identified)
            named = [Mention(r, r.display_name, 0, 0) for r in compatible if abbreviates(parsed, r)]
        if len({m.resource.display_name for m in named}) > 1:
            # Two different names fit what was typed ("orders dlq": orders-queue-dlq, orders-events-dlq): ask.
            return TargetChoice(clarification=Clarification(
                question=f"Several {type_label}s fit that name. Which one do you mean?",
                candidates=[candidate(m.resource) for m in named]))
    if not compatible:
        others = [candidate(r) for r in identified]
        question = (f"Which {type_label} do you mean? I found none among the resources identified for this request"
                    + (" (the ones found are of other types)." if others else "."))
        return TargetChoice(clarification=Clarification(question=question, candidates=others))
    if named:
        return _named_targets(prompt, named, compatible, hints)

    pool = _narrow(compatible, hints)
    # The prompt names a resource of another type ("stop the web-asg instances", "redeploy the api service on
    # staging-cluster"): what belongs to it is what is meant, never an unrelated look-alike.
    related = [r for r in pool if any(belongs_to(r, m.resource) for m in mentions)]
    if related:
        pool = related
        if parsed.plural and not read_only or parsed.every:
            owners = ", ".join(dict.fromkeys(m.resource.display_name for m in mentions))
            return TargetChoice(targets=related, warnings=[f"the {type_label}s of {owners}: acting on {len(related)}"])
    if parsed.engines and pool and not any(_engine_fits(r, parsed.engines) for r in pool):
        return TargetChoice(clarification=Clarification(
            question=f"No identified {type_label} runs {' or '.join(parsed.engines)}. Which one do you mean?",
            candidates=[candidate(r) for r in pool]))
    pool = [r for r in pool if _engine_fits(r, parsed.engines)]
    if (hints.accounts or hints.regions) and not pool:
        return TargetChoice(clarification=Clarification(
            question=f"No identified {type_label} is in {_said(hints)}. Which one do you mean?",
            candidates=[candidate(r) for r in compatible]))
    pool = list({_key(r): r for r in pool}.values())
    if parsed.everything and len({r.resource_type for r in identified}) > 1:
        return _everything(parsed, identified, pool, type_label)
    for phrase, members in _stem_groups(parsed, pool).items():
        places = {(r.account_id, r.region) for r in members}
        if len(places) > 1 and not (hints.accounts or hints.regions or parsed.every):
            return TargetChoice(clarification=Clarification(
                question=f"The {phrase} are in {len(places)} places. Which do you mean?",
                candidates=[candidate(r) for r in members]))
        return TargetChoice(targets=members, warnings=[f"'the {phrase}': acting on {len(members)} {type_label}s "
                                                       f"({', '.join(r.display_name for r in members)})"])
    tagged = _tag_selection(parsed, pool)
    if tagged:
        return TargetChoice(targets=tagged, warnings=[f"selected by the tags in the prompt: acting on {len(tagged)} "
                                                      f"resource{'s' if len(tagged) > 1 else ''}"])
    if _tag_terms(parsed) and not read_only:
        # Tags were stated and no single resource carries them: a change is never made on a guess.
        tags = ", ".join(f"{keys[0]}={value}" for keys, value in _tag_terms(parsed))
        carriers = [r for r in pool if _tagged(r, _tag_terms(parsed))]
        question = (f"Several {type_label}s carry {tags}. Which one do you mean?" if len(carriers) > 1 else
                    f"No identified {type_label} carries {tags}. Which one do you mean?")
        return TargetChoice(clarification=Clarification(question=question,
                                                        candidates=[candidate(r) for r in carriers or pool]))
    if parsed.every:
        return TargetChoice(targets=pool, warnings=[f"'all' in the prompt: acting on {len(pool)} resources"])
    if read_only and (lists_resources(prompt) or parsed.asks_for_a_set):
        return TargetChoice(targets=pool, warnings=[f"a listing: reading all {len(pool)} identified {type_label}s"])
    scored = sorted(pool, key=lambda r: -(r.match_score or 0.0))
    best = scored[0].match_score
    if not read_only and best is not None and best < MATCH_FLOOR:
        return TargetChoice(clarification=Clarification(
            question=f"Nothing in the prompt identifies the {type_label} clearly (best match {scored[0].display_name}, "
                     f"{best:.2f}). Which one do you mean?", candidates=[candidate(r) for r in scored[:8]]))
    if len(pool) == 1:
        return TargetChoice(targets=pool)
    second = scored[1].match_score
    if best is not None and second is not None and best - second >= CLEAR_MATCH_MARGIN:
        return TargetChoice(targets=[scored[0]], warnings=[
            f"{scored[0].display_name} chosen as the best match ({best:.2f} vs {second:.2f}); name it to be sure"])
    return TargetChoice(clarification=Clarification(
        question=f"Several {type_label}s match. Which one do you mean?", candidates=[candidate(r) for r in pool]))


def _no_such_name(word: str, type_label: str, pool: list[IdentifiedResource]) -> TargetChoice:
    near = _near(word, pool)
    question = f"No {type_label} named {word} was found: it matches nothing identified in your estate."
    if near:
        question += " Near names: " + ", ".join(dict.fromkeys(r.display_name for r in near)) + ". Which one do you mean?"
    return TargetChoice(clarification=Clarification(question=question, candidates=[candidate(r) for r in near]))


def _named_targets(prompt: str, named: list[Mention], compatible: list[IdentifiedResource], hints: Hints) -> TargetChoice:
    """The resources the prompt names, never another: narrowed by the place it says, or a question when
    the place contradicts where the named resource is, or when the name is in several places."""
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
        narrowed = _narrow(group, hints)
        if (hints.accounts or hints.regions) and not narrowed:
            places = ", ".join(dict.fromkeys(_where(r) for r in group))
            return TargetChoice(clarification=Clarification(
                question=f"{group[0].display_name} is in {places}, not in {_said(hints)}. Which one do you mean?",
                candidates=[candidate(r) for r in group]))
        unique = {_key(r): r for r in (narrowed or group)}
        if len(unique) > 1:
            unique = {_key(r): r for r in _by_context(prompt, list(unique.values()))}
        if len(unique) > 1:
            return TargetChoice(clarification=Clarification(
                question=f"{group[0].display_name} exists in {len(unique)} places. Which one do you mean?",
                candidates=[candidate(r) for r in unique.values()]))
        targets.extend(unique.values())
    return TargetChoice(targets=list({_key(t): t for t in targets}.values()))


def _everything(parsed: ParsedPrompt, identified: list[IdentifiedResource], pool: list[IdentifiedResource],
                type_label: str) -> TargetChoice:
    """"terminate everything in dev": the operation acts on one type, and "everything" covers others too.
    Acting on the part it can would silently drop the rest: ask, and say what "everything" holds."""
    kinds: dict[str, int] = {}
    for r in identified:
        kinds[r.resource_type] = kinds.get(r.resource_type, 0) + 1
    held = ", ".join(f"{n} {t}" for t, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    question = (f"'Everything' here covers {len(identified)} resources of {len(kinds)} types ({held}); this operation "
                f"acts only on {type_label}s ({len(pool)} of them). Say 'all {type_label}s' to act on those, "
                "or name the resources.")
    return TargetChoice(clarification=Clarification(question=question, candidates=[candidate(r) for r in pool]))
