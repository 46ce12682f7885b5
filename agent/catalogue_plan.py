"""Planning over the two tiers: the reviewed playbooks first, the generated catalogue behind them, and an
honest "I have no operation for ..." when neither agrees with the prompt.

``CatalogueRouter.route`` decides which tier answers:

1. the catalogue's best agreeing call is one a reviewed playbook makes -> that playbook (reviewed rules,
   preconditions, impact and rollback win when both match);
2. it is a call no playbook makes -> the catalogue entry, unless the playbook the classifier ranked first
   accounts for the prompt's objects at least as well;
3. no call agrees -> the playbook, only if it accounts for every object the prompt names; otherwise no
   step: "I have no operation for ...; nearest: ...".

``plan_entry`` turns a catalogue entry into steps with the same guarantees as a playbook: targets only among
the identified resources, values only from the prompt (validated by botocore), a question naming every
required member that neither fills, risk from the access-level table and the parameters, approval for every
write and sensitive read, and nothing the client's verification (app/execution/verify.py) would refuse.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from botocore import xform_name

from agent import aws_models
from agent.catalogue import Binding, Catalogue, CatalogueEntry
from agent.catalogue_match import (
    _LEAD_IN, _READ, _STOP, AMBIGUOUS_MARGIN, GENERIC, STATE_WORDS, TYPE_OBJECTS, CatalogueResult, OperationMatcher, _phrases, analyse, name_parts, same_family, singular,
)
from agent.catalogue_values import extract
from agent.facts import TYPE_NOUNS, resource_facts
from agent.lexicon import TYPE_NOUNS as LEXICON_NOUNS
from agent.classifier import _KEEP
from agent.lexicon import lists_resources, verbs_in
from agent.mentions import Hints, Mention, without_hints
from agent.operations import account_info
from agent.protocol import (
    AwsAccount, Candidate, Classification, IdentifiedResource, PlanRequest, PlanResponse, PlaybookScore, Script, Step,
    plan_hash,
)
from agent.risk import assess_operation
from agent.targets import choose_targets
from agent.text import normalise, stem

if TYPE_CHECKING:
    from agent.classifier import ClassifierResult
    from agent.planner import Planner
    from agent.playbook import Playbook
    from agent.playbook_index import PlaybookIndex

# verify.py refuses a step that acts on no identified resource yet names something (a GroupId, a UserName),
# unless the call makes that thing: the planner asks instead of planning what the client would refuse.
_NAMING_MEMBER = re.compile(r"(Name|Names|Id|Ids|Identifier|Identifiers|Arn|Arns|ARN|ARNs|Url|Urls|^name|^cluster"
                            r"|^service|^clusters|^services)$")
_MAKING_VERBS = ("Create", "Run", "Put", "Register", "Import", "Copy", "Restore", "Allocate", "Request", "Purchase",
                 "Publish", "Send", "Start")
CATALOGUE_METHOD = "catalogue"
# A reviewed playbook whose own utterances resemble the prompt this much (cosine of MiniLM vectors) is not
# vetoed by a word it does not own, when nothing in the catalogue owns that word either.
STRONG_DENSE = 0.75
_CLI_LINE = re.compile(r"^\s*aws\s+([a-z0-9-]+)\s+([a-z0-9]+(?:-[a-z0-9]+)+|[a-z0-9]+)(?=\s|$)")
_READS = (*_READ, "download")
_QUOTED = re.compile(r"[\"“”`]([^\"“”`]{1,1000})[\"“”`]|(?<![\w])'([^']{1,1000})'(?![\w])")


@dataclass
class Route:
    kind: Literal["playbook", "entry", "abstain", "ask"]
    playbook_id: str | None = None
    entry: CatalogueEntry | None = None
    question: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    confidence: float = 0.0
    catalogue: CatalogueResult | None = None


def _playbook_words(pb: "Playbook", catalogue: Catalogue | None = None) -> set[str]:
    """The object words a reviewed playbook accounts for: its title, the API names it calls, its resource
    types (and the nouns operators use for them), its parameters and its utterances (written by people
    for this playbook; a word of theirs is never the sole reason to plan it: the verb must fit too)."""
    words: set[str] = set()

    def add(text: str) -> None:
        words.update(singular(w) for w in re.findall(r"[a-z0-9]+", _phrases(normalise(text))))

    add(pb.title)
    add(pb.intent.replace("_", " "))
    for step in pb.steps:
        verb, head, tail = name_parts(step.operation)
        words.update([verb, *head, *tail])
        entry = catalogue.get(pb.step_service(step), step.operation) if catalogue is not None else None
        if entry is not None:
            for name in entry.members:  # what its calls take
                add(xform_name(name, " "))
            for name in (entry.returns if not entry.mutating else ()):  # what its reads answer ("status")
                add(xform_name(name, " "))
    for rtype in pb.resource_types:
        words.update(TYPE_OBJECTS.get(rtype, ()))
        for noun in LEXICON_NOUNS.get(rtype, ()):
            add(noun)
    for param in pb.parameters:
        add(param.name.replace("_", " "))
        add(param.description)
        for choice in param.choices:  # "resume Launch and Terminate": the processes it takes
            add(xform_name(choice, " "))
    for utterance in pb.utterances:
        add(utterance)
    return words


class CatalogueRouter:
    """Chooses the tier that answers a prompt (see the module docstring)."""

    def __init__(self, playbooks: dict[str, "Playbook"], catalogue: Catalogue, index: "PlaybookIndex"):
        self.playbooks = playbooks
        self.catalogue = catalogue
        self.index = index
        self.matcher = OperationMatcher(catalogue.entries)
        # Words typo repair must leave alone: the catalogue's own, and what operators put around a request.
        self.words = frozenset(self.matcher.vocabulary | self.matcher.nouns | set(_LEAD_IN) | set(_STOP)
                               | {w for words in self.matcher.members for w in words}
                               | {w for pb in playbooks.values() for t in (pb.title, *pb.utterances)
                                  for w in re.findall(r"[a-z]+", t.lower())})
        self.owns = {pid: _playbook_words(pb, catalogue) for pid, pb in playbooks.items()}
        # What a playbook acts on: the objects of its API names and its resource types (the rest of what it
        # owns it only accounts for).
        self.core = {pid: {w for step in pb.steps for w in name_parts(step.operation)[1]} for pid, pb in playbooks.items()}
        self.own_stems = {pid: {stem(w) for w in words} for pid, words in self.owns.items()}
        from agent.aws_models import cli_operation_name
        from agent.classifier import playbook_verbs

        self._by_cli = {(e.service, cli_operation_name(e.operation)): e for e in catalogue.entries}
        # The members each playbook's steps send (bound from targets or its parameters).
        self._sends = {pid: {m for step in pb.steps for m in step.parameters} for pid, pb in playbooks.items()}

        self._verbs = {pid: playbook_verbs(pb) for pid, pb in playbooks.items()}
        self.covering: dict[str, list[str]] = {}
        for pid, pb in playbooks.items():
            for step in pb.steps:
                self.covering.setdefault(f"{pb.step_service(step)}.{step.operation}", []).append(pid)

    def analyse(self, masked: str, prompt: str, mentions: list[Mention], hints: Hints | None = None,
                resources: list[IdentifiedResource] = ()) -> CatalogueResult:
        """``masked`` (the classifier's text: names as type nouns) feeds the dense and lexical signals; the
        object analysis reads the prompt with each named resource as a marker (its type's words are implied,
        not said), without hints and without quoted values."""
        replica = any(m.resource.relations.get("source_instance") or m.resource.attributes.get("read_replica_source")
                      for m in mentions)
        text = normalise(prompt)
        markers: dict[str, str] = {}
        for k, m in enumerate(sorted(mentions, key=lambda m: m.start, reverse=True)):
            text = text[: m.start] + f" zzres{k}zz " + text[m.end:]
            markers[f"zzres{k}zz"] = m.resource.resource_type
        text, typed = _near_names(text, resources, [m.resource for m in mentions], len(markers))
        markers.update(typed)
        if hints is not None:
            text = without_hints(text, hints)
        text = _QUOTED.sub(" ", text)
        objects = analyse(text, {m.resource.resource_type for m in mentions} | set(typed.values()), prompt, replica,
                          names=[r.display_name for r in resources], vocabulary=self.words, marker_types=markers)
        if not len(self.matcher.entries):
            return self.matcher.match(objects)
        vector = self.index.query_vector(masked)
        return self.matcher.match(objects, self.index.operations.dense(vector), self.index.operations.lexical(masked))

    def _unexplained_by(self, pid: str, result: CatalogueResult) -> list[str]:
        prompt = result.prompt
        owns, stems = self.owns[pid], self.own_stems[pid]
        return [w for w in self.matcher.object_words_of(prompt)
                if w not in owns and stem(w) not in stems and w not in GENERIC and w not in STATE_WORDS
                and not (w in prompt.verbish and w not in self.matcher.nouns)]

    def route(self, masked: str, prompt: str, mentions: list[Mention], result: "ClassifierResult",
              resources: list[IdentifiedResource] = (), hints: Hints | None = None) -> Route:
        cat = self.analyse(masked, prompt, mentions, hints, resources)
        current = None if result.no_match or not result.ranked else result.ranked[0].playbook_id
        typed = self._cli_entry(prompt)
        if typed is not None:  # "aws rds reboot-db-instance --db-instance-identifier X": the call is named
            if typed.id in self.covering:
                return self._covering(typed.id, current, result, cat)
            return Route("entry", entry=typed, confidence=0.99, catalogue=cat)
        best = cat.best
        if best is not None and best.entry.id in self.covering:
            return self._covering(best.entry.id, current, result, cat)
        reviewed = current is not None and self._reviewed(current, result, cat, mentions)
        if best is not None and best.entry.access.endswith("destructive") and _KEEP.search(normalise(prompt)):
            return Route("ask", question=f"The request says to keep what {best.entry.service} {best.entry.operation} "
                         "would delete; no plan can honour that exception. Say exactly what to delete.",
                         confidence=cat.confidence, catalogue=cat)
        if best is not None:
            near = next((m for m in cat.matches[1:] if m.entry.id in self.covering
                         and (best.score - m.score < AMBIGUOUS_MARGIN or same_family(m.entry, best.entry))), None)
            if near is not None:  # a reviewed call nearly as good as the best one, or the reviewed version of
                # the same call (ListObjectsV2 for ListObjects): the reviewed tier
                return self._covering(near.entry.id, current, result, cat)
            # The call whose own name says more of what the request names is the more specific answer
            # ("instance status checks": DescribeInstanceStatus, not the reviewed describe of the instance).
            accounts = reviewed and (self._by_head(best, cat) <= self._core_of(current, cat) or (
                # A question the reviewed describe answers whole ("how many tasks is api-service running?":
                # its runningCount) stays with it; an imperative names the call it wants.
                cat.prompt.question and self.playbooks[current].read_only and not self._unexplained_by(current, cat)))
            others = {m.resource.resource_type for m in mentions} - set(self.playbooks[current].resource_types) \
                if current is not None else set()
            if accounts and (
                    lists_resources(prompt) and self.playbooks[current].read_only and not others
                    or (self._api_verb_agrees(current, cat) and not self._object_disagrees(current, cat))):
                # Listing resources of a type is the reviewed describe over every identified one (the project's
                # listing design); otherwise the playbook keeps a tie the catalogue cannot break.
                return Route("playbook", playbook_id=current, confidence=result.confidence, catalogue=cat)
            return Route("entry", entry=best.entry, confidence=cat.confidence, catalogue=cat)
        if reviewed:
            return Route("playbook", playbook_id=current, confidence=result.confidence, catalogue=cat)
        if cat.ambiguous and not cat.prompt.foreign:
            top = [m.entry for m in cat.matches[:3]]
            return Route("ask", question="Which operation do you mean? " + "; ".join(
                f"{e.service} {e.operation}" for e in top) + ". Nothing runs until you say.",
                candidates=[entry_candidate(e) for e in top], confidence=cat.confidence, catalogue=cat)
        return self._abstain(cat, cat.reason)

    def _reviewed(self, pid: str, result: "ClassifierResult", cat: CatalogueResult, mentions: list[Mention]) -> bool:
        """The reviewed playbook the classifier ranked first answers the request: it stands for the request's
        verb, the prompt names no service outside the catalogue nor another service than its own, and it
        accounts for the objects the request clause names. Without a request verb the catalogue could read
        (a statement: "freeze api-asg, we're debugging the new AMI"), one object it owns is enough."""
        pb = self.playbooks[pid]
        if cat.prompt.foreign or not self._verb_fits(pid, result, cat):
            return False
        if cat.prompt.services and not cat.prompt.services & {pb.step_service(s) for s in pb.steps}:
            return False  # "list the ecs clusters" is not about RDS clusters
        if not pb.read_only and (cat.prompt.question or (cat.prompt.verbs and set(cat.prompt.api_verbs()) <= set(_READS))):
            return False  # a question or a request to read never becomes a change ("list the backups")
        if pb.read_only and cat.prompt.verbs and not cat.prompt.question \
                and not set(cat.prompt.api_verbs()) & set(_READS):
            return False  # nor is a request to change answered with a read ("tag X with k=v")
        unexplained = self._unexplained_by(pid, cat)
        if not unexplained:
            return True
        words = self.matcher.object_words_of(cat.prompt)
        if not cat.prompt.verbs and not cat.prompt.question:
            return self._explained_by(pid, cat) >= 1 or not words
        # Said the way its own utterances say it ("pause all scaling activity on the web asg"), with a verb of
        # its own and a resource of its type, and no call of the catalogue that would account for the rest.
        score = result.ranked[0]
        lexicon_verb = bool(set(result.prompt_verbs) & self.verbs_of(pid))
        others = any(w in self.matcher.heads[m.index] for m in cat.matches for w in unexplained)
        return score.dense >= STRONG_DENSE and score.type_fit == 1.0 and lexicon_verb and not others

    def _cli_entry(self, prompt: str) -> CatalogueEntry | None:
        """The entry an AWS CLI line names ("aws sqs purge-queue ..."), or None."""
        match = _CLI_LINE.match(normalise(prompt))
        if not match:
            return None
        service = {"s3api": "s3"}.get(match.group(1), match.group(1))
        return self._by_cli.get((service, match.group(2)))

    def _covering(self, entry_id: str, current: str | None, result: "ClassifierResult", cat: CatalogueResult) -> Route:
        """The reviewed playbook that makes this call: the classifier's first choice if it does, else the
        best ranked of those that do; none if the prompt sets a member none of them sends ("enable deletion
        protection on X" is ModifyDBInstance, but not the instance-class playbook's): then the entry."""
        said = self._said_members(entry_id, cat)
        covering = [pid for pid in self.covering[entry_id] if said <= self._sends[pid]]
        if not covering:
            entry = self.catalogue.by_id[entry_id]
            return Route("entry", entry=entry, confidence=cat.confidence, catalogue=cat)
        ranked = [s.playbook_id for s in result.ranked if s.playbook_id in covering]
        pick = current if current in covering else (ranked[0] if ranked else covering[0])
        return Route("playbook", playbook_id=pick, confidence=max(cat.confidence, result.confidence), catalogue=cat)

    def _said_members(self, entry_id: str, cat: CatalogueResult) -> set[str]:
        """Members of the call whose every word the request names (BackupRetentionPeriod in "set the backup
        retention period to 14 days"), leaving out the ones that name what it acts on."""
        from agent.catalogue_match import member_words

        entry = self.catalogue.by_id[entry_id]
        named = set(cat.prompt.named)
        bound = {b.member for b in entry.bindings}
        out = set()
        for member in entry.members:
            words = [w for w in member_words(member) if w not in ("enable", "is")]
            if member in bound or member == "DryRun" or not words or len(member) <= 4:
                continue
            if all(w in named for w in words) and not (len(words) == 1 and words[0] in GENERIC | {"name", "id", "type"}):
                out.add(member)
        return out

    def _object_disagrees(self, pid: str, cat: CatalogueResult) -> bool:
        """The playbook's call acts on something the prompt does not name ("delete the lambda X" names the
        function, not its concurrency): its API name's object words are not all in the prompt."""
        pb = self.playbooks[pid]
        said = set(cat.prompt.words)
        main = next((s for s in pb.steps if s.operation == pb.main_operation), pb.steps[0])
        return any(w not in said and w not in GENERIC for w in name_parts(main.operation)[1])

    def _by_head(self, match, cat: CatalogueResult) -> int:
        """How many of the request clause's object words the call's own name says."""
        own = set(self.matcher.heads[match.index]) | self.matcher.tails[match.index]
        return sum(1 for w in self.matcher.object_words_of(cat.prompt) if w in own)

    def _core_of(self, pid: str, cat: CatalogueResult) -> int:
        """How many of them name what the playbook acts on."""
        return sum(1 for w in self.matcher.object_words_of(cat.prompt) if w in self.core[pid])

    def _explained_by(self, pid: str, cat: CatalogueResult) -> int:
        """How many of the request clause's object words the playbook owns."""
        owns, stems = self.owns[pid], self.own_stems[pid]
        return sum(1 for w in self.matcher.object_words_of(cat.prompt) if w in owns or stem(w) in stems)

    def _api_verb_agrees(self, pid: str, cat: CatalogueResult) -> bool:
        """The request's verb may mean one of the playbook's API verbs ("delete the queue" is not a purge);
        a verb the catalogue does not know leaves the lexicon's judgement alone."""
        verbs = cat.prompt.api_verbs()
        if not verbs:
            return True
        pb = self.playbooks[pid]
        return any(name_parts(step.operation)[0] in verbs for step in pb.steps)

    def verbs_of(self, pid: str) -> frozenset[str]:
        return self._verbs[pid]

    def _verb_fits(self, pid: str, result: "ClassifierResult", cat: CatalogueResult) -> bool:
        """A change is never planned on the prompt's object alone ("fix the database" is not a stop): the
        request must say a verb the playbook stands for. A reviewed read may answer a verbless question."""
        pb = self.playbooks[pid]
        stands_for = self.verbs_of(pid)
        said = set(result.prompt_verbs) | (verbs_in(cat.prompt.verbs[0]) if cat.prompt.verbs else set())
        api = set(cat.prompt.api_verbs()) if cat.prompt.verbs and not cat.prompt.question else set()
        return bool(said & stands_for) or bool(api & {name_parts(s.operation)[0] for s in pb.steps}) or (
            pb.read_only and (cat.prompt.question or not cat.prompt.verbs or not result.prompt_verbs))

    def _abstain(self, cat: CatalogueResult, reason: str) -> Route:
        said = " ".join([*(cat.prompt.verbs[:1]), *cat.prompt.named]) or "this request"
        nearest = cat.nearest[:3]
        question = f"I have no operation for '{said}'"
        if reason:
            question += f": {reason}"
        if nearest:
            question += "; nearest: " + ", ".join(f"{e.service} {e.operation}" for e in nearest)
        else:
            question += "; nearest: none (no call resembles it)"
        question += ". Nothing will run."
        return Route("abstain", question=question, candidates=[entry_candidate(e) for e in nearest], catalogue=cat)


def _near_names(text: str, resources: list[IdentifiedResource], named: list[IdentifiedResource],
                start: int) -> tuple[str, dict[str, str]]:
    """Names typed with a slip ("biling-mysql") of identified resources the mentions missed, replaced by
    markers like a mention: the lookup found the resource, so its type is what the prompt is about."""
    from rapidfuzz.distance import DamerauLevenshtein

    markers: dict[str, str] = {}
    candidates = [r for r in resources if r not in named and r.display_name and len(r.display_name) >= 6]
    if not candidates:
        return text, markers
    for token in set(re.findall(r"[a-z0-9][a-z0-9._-]*[-_.0-9][a-z0-9._-]*", text)):
        if token.startswith("zzres"):
            continue
        close = [r for r in candidates if DamerauLevenshtein.distance(token, normalise(r.display_name)) <= 2]
        if len({r.resource_type for r in close}) == 1:
            marker = f"zzres{start + len(markers)}zz"
            markers[marker] = close[0].resource_type
            text = re.sub(r"(?<![\w-])" + re.escape(token) + r"(?![\w-])", f" {marker} ", text)
    return text, markers


def entry_candidate(entry: CatalogueEntry) -> Candidate:
    return Candidate(kind="operation", label=entry.title(), operation=entry.id)


# ------------------------------------------------------------------------------------------------ planning
class Ask(Exception):
    """Planning an entry stops at a question (a target, an account, a value)."""

    def __init__(self, question: str, candidates: list[Candidate] | None = None):
        super().__init__(question)
        self.question = question
        self.candidates = candidates or []


def _noun(types: tuple[str, ...]) -> str:
    return " or ".join(sorted({TYPE_NOUNS.get(t, t) for t in types}))


def _binding_value(binding: Binding, targets: list[IdentifiedResource]) -> Any:
    values = []
    for t in targets:
        value = t.resource_id if binding.field == "resource_id" else getattr(t, binding.field, None) or t.attributes.get(binding.field)
        if not value:
            raise Ask(f"{t.display_name} has no {binding.field} in the estate index, and {binding.member} needs it.")
        values.append({binding.inner: value} if binding.inner else value)
    return values if binding.is_list else values[0]


def _targets_for(entry: CatalogueEntry, request: PlanRequest, mentions: list[Mention], hints: Hints,
                 read_only: bool) -> dict[str, list[IdentifiedResource]]:
    """The identified resources each binding takes: the first required binding through the playbook
    target rules (names win, hints narrow, several ask); the others only from resources the prompt names."""
    resources = request.identified_resources
    out: dict[str, list[IdentifiedResource]] = {}
    required = [b for b in entry.bindings if b.required]
    mentioned = {m.resource.resource_type for m in mentions}
    primary = required[0] if required else next((b for b in entry.bindings if set(b.resource_types) & mentioned), None)
    if primary is None:
        return out
    choice = choose_targets(request.prompt, list(primary.resource_types), resources, mentions, hints,
                            _noun(primary.resource_types), read_only=read_only)
    if choice.clarification:
        raise Ask(choice.clarification.question, choice.clarification.candidates)
    targets = choice.targets
    if not primary.is_list and len(targets) > 1 and len(entry.bindings) > 1:
        raise Ask(f"{entry.service} {entry.operation} takes one {_noun(primary.resource_types)}; which one?",
                  [_resource_candidate(t) for t in targets])
    out[primary.member] = targets
    for binding in entry.bindings:
        if binding is primary or binding.member in out:
            continue
        named = [m.resource for m in mentions if m.resource.resource_type in binding.resource_types
                 and m.resource not in targets]
        named = list({r.resource_id: r for r in named}.values())
        if binding.required and not named:
            raise Ask(f"Which {_noun(binding.resource_types)} should {entry.service} {entry.operation} use for "
                      f"{binding.member}? Name it in the request.")
        if len(named) > 1 and not binding.is_list:
            raise Ask(f"{entry.service} {entry.operation} takes one {_noun(binding.resource_types)} for "
                      f"{binding.member}; which one?", [_resource_candidate(r) for r in named])
        if named:
            out[binding.member] = named
    return out


def _resource_candidate(r: IdentifiedResource) -> Candidate:
    where = " / ".join(x for x in (r.account_name or r.account_id, r.region) if x)
    return Candidate(kind="resource", label=f"{r.display_name} ({r.resource_type}, {where})", resource_id=r.resource_id,
                     resource_type=r.resource_type, account_id=r.account_id, account_name=r.account_name,
                     region=r.region)


def _account_and_region(request: PlanRequest, hints: Hints, entry: CatalogueEntry) -> tuple[AwsAccount | None, str]:
    """Where a call that acts on no identified resource runs: the account the prompt names (or the only
    one), in the region it names (or the account's first configured region)."""
    accounts = request.user_context.aws_accounts
    chosen = [a for a in accounts if a.account_id and a.account_id in hints.accounts]
    if len(chosen) != 1:
        chosen = accounts if len(accounts) == 1 else []
    if not chosen:
        names = ", ".join(a.name for a in accounts) or "none is configured"
        raise Ask(f"In which account should {entry.service} {entry.operation} run ({names})? Say e.g. 'in "
                  f"{accounts[0].name if accounts else 'production'}'.")
    account = chosen[0]
    regions = sorted(hints.regions)
    if len(regions) > 1:
        raise Ask(f"{entry.service} {entry.operation} runs in one region; which of {', '.join(regions)}?")
    region = regions[0] if regions else (account.regions[0] if account.regions else request.user_context.default_region)
    if not region:
        raise Ask(f"In which region should {entry.service} {entry.operation} run? Say e.g. 'in us-east-1'.")
    return account, region


def _member_help(entry: CatalogueEntry, member: str) -> str:
    shape = aws_models.input_members(entry.service, entry.operation)[member]
    doc = re.sub(r"<[^>]+>", " ", getattr(shape, "documentation", "") or "")
    doc = re.sub(r"\s+", " ", doc).strip().split(". ")[0][:140]
    enum = getattr(shape, "enum", None) or []
    kind = f"one of {', '.join(enum[:6])}" if enum else shape.type_name
    return f"{member} ({kind}{': ' + doc if doc else ''})"


def plan_entry(planner: "Planner", route: Route, request: PlanRequest, mentions: list[Mention], hints: Hints,
               value_text: str, warnings: list[str], now: datetime) -> PlanResponse:
    """The plan for one catalogue entry, or a question that names what is missing (never a guess)."""
    entry = route.entry
    assert entry is not None
    value_text = _cased_value_text(request.prompt, mentions, value_text)
    classification = Classification(
        intent=entry.verb, system="aws", service=entry.service, operation=entry.operation,
        confidence=route.confidence, playbook=None, method=CATALOGUE_METHOD,
        runner_up=[PlaybookScore(playbook=m.entry.id, score=m.score) for m in (route.catalogue.matches[1:4]
                                                                               if route.catalogue else [])])
    try:
        steps, targets = _steps(entry, request, mentions, hints, value_text, warnings)
    except Ask as ask:
        return _question(planner, request, classification, warnings, ask.question, ask.candidates)
    facts = [resource_facts(t, target_count=len(targets), cross_account=len({t.account_id for t in targets}) > 1)
             for t in targets]
    sent = [{k: v for s in steps if t.resource_id in s.targets for k, v in s.parameters.items()} for t in targets]
    risk = assess_operation(entry.service, entry.operation, facts, accounts=len({t.account_id for t in targets}) or 1,
                            parameters=sent if targets else [s.parameters for s in steps])
    facts_by_id = {t.resource_id: f for t, f in zip(targets, facts)}
    planner._apply_deny_rules(request, f"catalogue:{entry.id}", steps, targets, facts_by_id, risk)
    approval = any(s.mutating for s in steps) or entry.needs_approval
    lines = [f"{entry.service} {entry.operation}: {entry.summary}"]
    lines.append(f"No reviewed playbook covers this call: it is generated from botocore's model (catalogue entry "
                 f"{entry.id}, confidence {route.confidence:.2f}).")
    for n, step in enumerate(steps, 1):
        on = ", ".join(t.display_name for t in targets if t.resource_id in step.targets) or "no existing resource"
        lines.append(f"Step {n}: {step.operation} on {on} in {step.account_name or step.account_id} / {step.region}.")
    lines.append(f"Risk {risk.level}: " + "; ".join(risk.reasons) + ".")
    if risk.denied:
        lines.append("DENIED by policy: " + "; ".join(risk.denied_reasons) + ". It cannot be approved.")
    elif approval:
        lines.append("Approval is required before anything runs.")
    else:
        lines.append("Read-only: no approval needed.")
    return PlanResponse(
        request_id=uuid.uuid4().hex, served_by=planner.served_by, classification=classification,
        identified_resources=request.identified_resources, explain_plan="\n".join(lines),
        script=Script(steps=steps), risk_assessment=risk, approval_required=approval, clarification=None,
        warnings=warnings, playbook_version=None, plan_hash=plan_hash(steps))


def _cased_value_text(prompt: str, mentions: list[Mention], lowered: str) -> str:
    """The prompt with the names it mentions replaced by a sentinel, in the operator's own case (ARNs, keys,
    payloads are case-sensitive). Mention spans index the NFKC-folded lowercase text; when folding changed the
    length, the folded text is all there is."""
    if len(normalise(prompt)) != len(prompt):
        return lowered
    text = prompt
    for m in sorted(mentions, key=lambda m: m.start, reverse=True):
        text = text[: m.start] + "§" + text[m.end:]
    return text


def _question(planner: "Planner", request: PlanRequest, classification: Classification, warnings: list[str],
              question: str, candidates: list[Candidate]) -> PlanResponse:
    from agent.protocol import Clarification, RiskAssessment

    return PlanResponse(
        request_id=uuid.uuid4().hex, served_by=planner.served_by, classification=classification,
        identified_resources=request.identified_resources, explain_plan=f"Nothing will run yet. {question}",
        script=Script(steps=[]), risk_assessment=RiskAssessment(level="low", reasons=["no step planned"]),
        approval_required=False, clarification=Clarification(question=question, candidates=candidates),
        warnings=warnings, playbook_version=None, plan_hash=None)


def _steps(entry: CatalogueEntry, request: PlanRequest, mentions: list[Mention], hints: Hints, value_text: str,
           warnings: list[str]) -> tuple[list[Step], list[IdentifiedResource]]:
    bound = _targets_for(entry, request, mentions, hints, read_only=not entry.needs_approval)
    members = aws_models.input_members(entry.service, entry.operation)
    values = extract(entry, request.prompt, value_text, set(bound) | {b.member for b in entry.bindings},
                     hints=[p.lower() for p in hints.phrases])
    if values.refused:
        member, why = next(iter(values.refused.items()))
        raise Ask(f"The value given for {member} is not valid for {entry.service} {entry.operation}: {why}. "
                  f"What should it be?")
    params = dict(values.found)
    targets = [t for ts in bound.values() for t in ts]
    making = entry.operation.startswith(_MAKING_VERBS)
    if not targets and not making:
        names = {m: v for m, v in params.items() if _NAMING_MEMBER.search(m)}
        if names:
            if entry.needs_approval:
                member, value = next(iter(names.items()))
                raise Ask(f"{entry.service} {entry.operation} would act on {value} ({member}), which is not a resource "
                          "the estate index holds, so this client cannot check it; nothing is planned. Name a "
                          "resource the index holds, or run it yourself.")
            for member in names:  # a read lists everything instead of filtering by a name nobody checked
                warnings.append(f"{member} {params.pop(member)!r} is not in the estate index: the call lists "
                                "without that filter")
    if entry.mutating and not targets and not params:
        naming = [m for m in members if _NAMING_MEMBER.search(m) and m not in ("DryRun",)]
        if naming:  # "delete the key pair" with no name: a write that names nothing acts on nothing said
            raise Ask(f"{entry.service} {entry.operation} needs to know what to act on: "
                      + "; ".join(_member_help(entry, m) for m in naming[:3]) + ". Say it in the request.")
    if entry.verb in ("delete", "remove", "untag") and any(h.startswith("tag") for h in entry.head) and not any(
            m in params for m in ("Tags", "TagKeys", "tagKeys", "Keys")) \
            and not re.search(r"\b(?:all|every)\s+(?:the\s+|its\s+|of\s+its\s+)?tags?\b", normalise(request.prompt)):
        # Without the keys some of these calls remove every tag: name them or nothing is planned.
        tagged = next((m for m in ("TagKeys", "tagKeys", "Tags", "Keys") if m in members), "TagKeys")
        raise Ask(f"Which tags should {entry.service} {entry.operation} remove? Say their keys "
                  f"({_member_help(entry, tagged)}); nothing is removed unnamed.")
    missing = [m for m in entry.required if m not in params and m not in bound]
    if missing:
        raise Ask(f"{entry.service} {entry.operation} needs " + "; ".join(_member_help(entry, m) for m in missing)
                  + ". Say " + ("it" if len(missing) == 1 else "them") + " in the request; nothing is guessed.")
    if entry.mutating and entry.operation.startswith(("Modify", "Update", "Set", "Put")) and not params and not any(
            m not in {b.member for b in entry.bindings} for m in entry.required):
        changeable = [m for m in members if m not in bound and m not in ("DryRun",)][:8]
        raise Ask(f"What should {entry.service} {entry.operation} change? It takes " + ", ".join(changeable)
                  + ". Say the member and its value.")
    primary = next(iter(bound), None)
    groups: list[list[IdentifiedResource]]
    if primary is None:
        groups = [[]]
    else:
        binding = next(b for b in entry.bindings if b.member == primary)
        if binding.is_list:
            grouped: dict[tuple[Any, Any], list[IdentifiedResource]] = {}
            for t in bound[primary]:
                grouped.setdefault((t.account_id, t.region), []).append(t)
            groups = list(grouped.values())
        else:
            groups = [[t] for t in bound[primary]]
    steps: list[Step] = []
    for n, group in enumerate(groups, 1):
        call = dict(params)
        acted: list[IdentifiedResource] = []
        for member, resources in bound.items():
            binding = next(b for b in entry.bindings if b.member == member)
            chosen = group if member == primary else resources
            call[member] = _binding_value(binding, chosen)
            acted += [r for r in chosen if r not in acted]
        if group:
            first = group[0]
            account = account_info(first, request.user_context)
            configured = next((a for a in request.user_context.aws_accounts
                               if a.account_id and a.account_id == first.account_id), None)
            # Global resources (IAM roles) have no region: the account's first, as the index lists them.
            region = first.region or request.user_context.default_region or (
                configured.regions[0] if configured and configured.regions else None)
            if not region:
                raise Ask(f"No region is known for {first.display_name}; name one (e.g. 'in us-east-1').")
            account_id, account_name, profile = account.account_id, account.name, account.profile
        else:
            configured, region = _account_and_region(request, hints, entry)
            account_id, account_name, profile = configured.account_id, configured.name, configured.profile
        try:
            call = aws_models.coerce_parameters(entry.service, entry.operation, call)
        except (ValueError, TypeError) as exc:
            raise Ask(f"I could not build a valid {entry.operation} call: {exc}") from None
        problems = aws_models.validate_parameters(entry.service, entry.operation, call)
        if problems:
            raise Ask(f"I could not build a valid {entry.operation} call: {problems[0]}")
        argv = aws_models.render_cli(entry.service, entry.operation, call, region, profile)
        steps.append(Step(
            step_id=f"step-{n}", service=entry.service, operation=entry.operation, parameters=call,
            account_id=account_id, account_name=account_name, region=region, profile=profile,
            mutating=entry.mutating, command=aws_models.command_line(argv), argv=argv,
            description=entry.summary or entry.operation, targets=[r.resource_id for r in acted]))
    unique: dict[int, IdentifiedResource] = {}
    for ts in bound.values():
        for t in ts:
            unique.setdefault(id(t), t)
    return steps, list(unique.values())
