"""The planner: PlanRequest in, PlanResponse out. Stateless; the same object serves the remote server
and the client's offline fallback.

Order of work: find the names the prompt mentions, classify with names masked, choose targets among
the identified resources, check preconditions, fill parameters, build and validate the steps, assess
risk, apply deny rules, explain. Whenever something is not certain (the operation, the target, a
required value) the answer is a clarification with no mutating step; an identifier is never invented.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from botocore import xform_name

from agent import slots
from agent.bindings import BindingError, resolve
from agent.catalogue import Catalogue, build_entries
from agent.catalogue_plan import CatalogueRouter, Route, plan_entry
from agent.classifier import AMBIGUOUS_CONFIDENCE, Classifier, ClassifierResult, unplanned_changes
from agent.embeddings import Embedder, shared_embedder
from agent.facts import TYPE_NOUNS, condition_holds, resource_facts
from agent.lexicon import VAGUE_EXCLUSIONS, verbs_in
from agent.llm import MODEL_FAILED
from agent.mentions import (Mention, candidate_types, find_hints, find_mentions, is_excluded, masked_prompt,
                            request_prompt, without_hints)
from agent.operations import StepBuildError, build_steps
from agent.playbook import LoadedPlaybook, ParamSpec, Playbook, default_playbook_dir, load_playbooks
from agent.playbook_index import CatalogueStats, IndexStats, PlaybookIndex
from agent.policy import rule_matches
from agent.protocol import (
    Candidate, Clarification, Classification, DenyRule, IdentifiedResource, PlanRequest, PlanResponse,
    PlaybookScore, RiskAssessment, Script, Step, plan_hash,
)
from agent.questions import guard_question
from agent.risk import assess
from agent.targets import choose_targets
from agent.text import normalise

ServedBy = Literal["server", "local"]
# Quoted text is a value (a message, a name), not the request: the classifier sees "message" instead.
_QUOTED_TEXT = re.compile(r"[\"“”`]([^\"“”`]{1,1000})[\"“”`]|(?<![\w])'([^']{1,1000})'(?![\w])")




class _SafeFormat(dict):
    def __missing__(self, key: str) -> str:
        return "unknown"


@dataclass
class Clarify(Exception):
    """Raised inside planning to answer with a question instead of a plan."""

    question: str
    candidates: list[Candidate]


class AgentStack:
    """Playbooks, their index and the classifier: built once per process, shared by every request."""

    def __init__(self, playbooks: list[LoadedPlaybook], index: PlaybookIndex, deny_rules: list[DenyRule] | None = None,
                 catalogue: Catalogue | None = None):
        """``catalogue`` None builds the operation catalogue from the installed botocore (an empty Catalogue
        leaves the reviewed playbooks alone)."""
        self.loaded = {lp.playbook.id: lp for lp in playbooks}
        self.playbooks: dict[str, Playbook] = {pid: lp.playbook for pid, lp in self.loaded.items()}
        self.index = index
        self.index_stats: IndexStats = index.sync(playbooks)
        self.catalogue = catalogue if catalogue is not None else Catalogue(index.cached_catalogue() or build_entries())
        self.catalogue_stats: CatalogueStats = index.sync_catalogue(self.catalogue.entries)
        self.router = CatalogueRouter(self.playbooks, self.catalogue, index)
        self.classifier = Classifier(self.playbooks, index)
        self.deny_rules = list(deny_rules or [])
        # The offline model (agent.llm.GapFiller): set on the client's local stack only, never on the server.
        self.gap_filler = None

    @classmethod
    def build(cls, playbook_dir: Path | None = None, cache_dir: Path | None = None,
              embedder: Embedder | None = None, deny_rules: list[DenyRule] | None = None,
              qdrant_location: str | None = None, db_url: str | None = None,
              catalogue: Catalogue | None = None) -> "AgentStack":
        """``qdrant_location`` (a Qdrant URL or folder) puts the playbook vectors in Qdrant instead of numpy;
        ``db_url`` (any SQLAlchemy/SQLModel URL: ``postgresql+psycopg://...``, ``sqlite:////srv/...``) holds
        the playbook metadata and vector cache, so a team's server workers share one cache."""
        embedder = embedder or shared_embedder()
        playbooks = load_playbooks(playbook_dir or default_playbook_dir())
        if db_url:
            index = PlaybookIndex(embedder, db_url=db_url, qdrant_location=qdrant_location)
        elif cache_dir:
            index = PlaybookIndex.at(cache_dir, embedder, qdrant_location)
        else:
            index = PlaybookIndex(embedder, qdrant_location=qdrant_location)
        return cls(playbooks, index, deny_rules, catalogue)

    def planner(self, served_by: ServedBy) -> "Planner":
        return Planner(self, served_by)


class Planner:
    def __init__(self, stack: AgentStack, served_by: ServedBy):
        self.stack = stack
        self.served_by = served_by
        self._llm_used = False

    # -- the whole path -------------------------------------------------------------------------
    def plan(self, request: PlanRequest, now: datetime | None = None) -> PlanResponse:
        now = now or datetime.now(timezone.utc)
        self._llm_used = False
        resources = request.identified_resources
        parsed = request_prompt(request.prompt, request.user_context, resources)  # read once, by every stage
        if parsed.excluded:  # "every instance in staging except web-1": web-1 is never a target, whoever sent it
            resources = [r for r in resources if not is_excluded(r, [e.text for e in parsed.excluded])]
        mentions = find_mentions(request.prompt, resources, parsed)
        hints = find_hints(parsed, request.user_context, resources)
        masked = _QUOTED_TEXT.sub(" message ", without_hints(masked_prompt(request.prompt, mentions), hints))
        result = self.stack.classifier.classify(masked, candidate_types(masked, mentions, resources, parsed),
                                                named=bool(mentions))
        warnings: list[str] = []
        vague = [e.text for e in parsed.excluded if e.text in VAGUE_EXCLUSIONS]
        if vague:  # "stop every instance except those": what is left out must be said, not guessed
            return self._clarify(request, result, None, warnings,
                                 f"What should be left out? \"{vague[0]}\" does not say which resources. Name them "
                                 "(except web-1), or say a state, environment or region (except the stopped ones, "
                                 "except prod, except those in us-east-1).", [])
        if len(request.prompt) > 1000:
            warnings.append("long prompt: only the operation, names and values it states are used")

        # --- the operation catalogue (agent/catalogue_plan.py): reviewed playbook, generated call, or none ---
        route = self.stack.router.route(masked, request.prompt, mentions, result, resources, hints)
        # -- question guard (agent.questions): a question never yields a change, a catalogue entry's neither --
        if parsed.question is not None and route.kind == "entry" and route.entry is not None and route.entry.mutating:
            route = Route("playbook")
        # -- end of question guard --
        if route.kind == "entry" and route.entry is not None:
            entry_verbs = verbs_in(f"{xform_name(route.entry.operation, ' ')} {route.entry.summary}")
            if unplanned := unplanned_changes(masked, frozenset(entry_verbs), request.prompt):
                return self._clarify(request, result, None, warnings,
                                     _one_request_question(route.entry.operation, unplanned), route.candidates)
        if route.kind == "entry":
            text = _value_text(request.prompt, mentions, None)
            return plan_entry(self, route, request, mentions, hints, text, warnings, now)
        if route.kind in ("abstain", "ask"):
            return self._clarify(request, result, None, warnings, route.question, route.candidates)
        result = _preferring(result, route)
        # --- end of the catalogue's routing ---

        if result.no_match:
            # Suggestions are offered only when something came close; otherwise they would be noise.
            close = [c for c, s in zip(self._playbook_candidates(result, 3), result.ranked) if s.dense >= 0.45]
            question = ("I could not match this request to an AWS operation I know. "
                        + ("Which of these did you mean?" if close else
                           "Say what to do and to which resource, e.g. 'stop pg-instance-main1'."))
            return self._clarify(request, result, None, warnings, question, close)
        best = self.stack.playbooks[result.ranked[0].playbook_id]
        # -- question guard (agent.questions): a question never yields a change --------------------------
        guard = guard_question(parsed, best, result.ranked, self.stack.playbooks)
        if guard.playbook is None:
            return self._clarify(request, result, best, warnings, guard.note or "", [])
        if guard.changed:
            best = guard.playbook
            warnings.append(guard.note or "")
        # -- end of question guard -----------------------------------------------------------------------
        # -- one request per plan: a second clause asking for another change is never dropped silently --
        if unplanned := unplanned_changes(masked, self.stack.classifier.mentioned[best.id], request.prompt):
            candidates = self._covering(result, best, unplanned)
            both = candidates[0].label if len(candidates) > 1 else None
            return self._clarify(request, result, best, warnings, _one_request_question(best.title, unplanned, both),
                                 candidates)
        if not guard.changed and result.confidence < AMBIGUOUS_CONFIDENCE and self._rival(result, best):
            candidates = self._playbook_candidates(result, 3)
            question = "Which operation do you mean?"
            suggested = self._llm_rank(request.prompt, candidates, warnings)
            if suggested is not None:
                candidates = [suggested] + [c for c in candidates if c is not suggested]
                question += f" (the offline model suggests {suggested.playbook}; nothing runs until you say)"
            return self._clarify(request, result, None, warnings, question, candidates)  # no operation chosen

        noun = " or ".join(sorted({TYPE_NOUNS.get(t, t) for t in best.resource_types}))
        choice = choose_targets(request.prompt, best.resource_types, resources, mentions, hints, noun,
                                read_only=best.read_only, parsed=parsed)
        warnings += choice.warnings
        if choice.clarification:
            return self._clarify(request, result, best, warnings, choice.clarification.question,
                                 choice.clarification.candidates)
        targets = choice.targets
        accounts = {t.account_id for t in targets}
        facts = {t.resource_id: resource_facts(t, target_count=len(targets), cross_account=len(accounts) > 1)
                 for t in targets}

        runnable: list[IdentifiedResource] = []
        for target in targets:
            blocked = self._preconditions(best, target, facts[target.resource_id], warnings)
            if not blocked:
                runnable.append(target)

        try:
            params = {t.resource_id: self._parameters(best, request.prompt, _value_text(request.prompt, mentions, t), t,
                                                      now, warnings) for t in runnable}
            steps = build_steps(best, runnable, params, request.user_context, now).steps if runnable else []
        except Clarify as ask:
            return self._clarify(request, result, best, warnings, ask.question, ask.candidates)
        except StepBuildError as exc:
            return self._clarify(request, result, best, warnings + [str(exc)], f"I could not build a valid call: {exc}", [])

        # Preconditions on the call's own values (param.DesiredCapacity below the group's minimum), now built.
        steps, runnable = self._value_preconditions(best, steps, runnable, facts, warnings)
        sent = {t.resource_id: _sent_to(t, steps) for t in targets}
        assessed = runnable or targets
        risk = assess(best, [facts[t.resource_id] for t in assessed], accounts=len(accounts),
                      parameters=[sent[t.resource_id] for t in assessed])
        self._apply_deny_rules(request, best.id, steps, runnable, facts, risk)
        if not steps:
            warnings.append("nothing to run: every target failed a precondition")
        response = PlanResponse(
            request_id=uuid.uuid4().hex, served_by=self.served_by,
            classification=self._classification(best, result),
            identified_resources=resources,
            explain_plan=self._explain(best, targets, runnable, steps, risk, result),
            script=Script(steps=steps), risk_assessment=risk,
            approval_required=any(s.mutating for s in steps),
            clarification=None, warnings=warnings,
            playbook_version=best.version, plan_hash=plan_hash(steps),
        )
        return response

    # -- pieces ---------------------------------------------------------------------------------
    def _rival(self, result: ClassifierResult, best: Playbook) -> bool:
        """A runner-up that fits the targets as well and would do something else."""
        if len(result.ranked) < 2:
            return False
        second = self.stack.playbooks[result.ranked[1].playbook_id]
        return result.ranked[1].type_fit >= result.ranked[0].type_fit and second.main_operation != best.main_operation

    def _value_preconditions(self, pb: Playbook, steps: list[Step], runnable: list[IdentifiedResource],
                             facts: dict[str, dict[str, Any]], warnings: list[str]
                             ) -> tuple[list[Step], list[IdentifiedResource]]:
        """Preconditions that read ``param.<Member>``: checked on each built step with its target's facts; a
        blocking one drops the step (and its target), as a fact precondition does before building."""
        checks = [pre for pre in pb.preconditions if pre.when.members]
        if not checks:
            return steps, runnable
        blocked: set[str] = set()
        by_id = {t.resource_id: t for t in runnable}
        for step in steps:
            for target_id in step.targets:
                target, target_facts = by_id.get(target_id), facts.get(target_id, {})
                for pre in checks:
                    if target is None or not condition_holds(pre.when.facts, target_facts, step.parameters):
                        continue
                    fmt = _SafeFormat({**{k: v for k, v in target_facts.items() if v is not None}, **step.parameters,
                                       "name": target.display_name})
                    message = pre.message.format_map(fmt)
                    if pre.severity == "block":
                        warnings.append(f"skipped {target.display_name}: {message}")
                        blocked.add(target_id)
                    elif message not in warnings:
                        warnings.append(message)
        kept = [s for s in steps if not set(s.targets) & blocked]
        for n, step in enumerate(kept, 1):
            step.step_id = f"step-{n}"
        return kept, [t for t in runnable if t.resource_id not in blocked]

    def _preconditions(self, pb: Playbook, target: IdentifiedResource, facts: dict[str, Any], warnings: list[str]) -> bool:
        blocked = False
        for pre in pb.preconditions:
            if pre.when.members:
                continue  # read the call's values: checked once the steps are built (_value_preconditions)
            names = {k[:-4] if k.endswith("_not") else k for k in pre.when.facts}
            unknown = [n for n in names if facts.get(n) is None]
            fmt = _SafeFormat({**{k: v for k, v in facts.items() if v is not None}, "name": target.display_name})
            if unknown:
                if "state" in unknown:
                    warnings.append(f"{target.display_name}: state unknown; could not check that it allows this")
                continue
            if condition_holds(pre.when.facts, facts):
                message = pre.message.format_map(fmt)
                if pre.severity == "block":
                    warnings.append(f"skipped {target.display_name}: {message}")
                    blocked = True
                else:
                    warnings.append(message)
        return blocked

    def _parameters(self, pb: Playbook, prompt: str, masked: str, target: IdentifiedResource, now: datetime,
                    warnings: list[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for spec in pb.parameters:
            raw = slots.extract(spec, prompt, masked)
            if raw is None and spec.default is not None:
                default = spec.default
                if isinstance(default, str):
                    try:
                        default = resolve(default, {"target": {**target.model_dump(), "name": target.display_name},
                                                    "date": now.strftime("%Y%m%d-%H%M"),
                                                    "account_id": target.account_id, "region": target.region})
                    except BindingError:
                        default = None
                if default is not None:
                    values[spec.name] = slots.validate(spec, _sanitise_default(spec, default))
                    if spec.required:
                        warnings.append(f"{spec.name} not given: using {values[spec.name]!r}")
                continue
            if raw is None and spec.required:
                raw = self._llm_slot(prompt, masked, spec, warnings)
            if raw is None:
                if spec.required:
                    raise Clarify(f"What {spec.description.lower()} should I use for {target.display_name}?", [])
                continue
            try:
                values[spec.name] = slots.validate(spec, raw)
            except slots.SlotError as exc:
                raise Clarify(f"{exc} — what {spec.description.lower()} should I use?", []) from None
        return values

    def _llm_slot(self, prompt: str, masked: str, spec: ParamSpec, warnings: list[str]) -> Any:
        """A required value the cue patterns missed, chosen by the offline model among the prompt's own
        valid values (the caller validates it again, like a typed value). None without a model or when
        the prompt holds no candidate."""
        filler = self.stack.gap_filler
        if filler is None:
            return None
        options = slots.candidates(spec, masked)
        if not options:
            return None
        try:
            value = filler.fill_slot(prompt, spec.description, options)
        except Exception:  # noqa: BLE001 - a model failure only means: ask the operator, as without a model
            _note_model_failure(warnings)
            return None
        if value is not None:
            self._llm_used = True
            warnings.append(f"{spec.name} = {value!r} was read from the prompt by the offline model: check it "
                            "before approving")
        return value

    def _llm_rank(self, prompt: str, candidates: list[Candidate], warnings: list[str]) -> Candidate | None:
        filler = self.stack.gap_filler
        if filler is None:
            return None
        choices = {c.playbook: c.label for c in candidates if c.playbook}
        try:
            pick = filler.rank_choices(prompt, choices)
        except Exception:  # noqa: BLE001 - no suggestion is the answer without a model too
            _note_model_failure(warnings)
            return None
        if pick is None:
            return None
        self._llm_used = True
        return next(c for c in candidates if c.playbook == pick)

    def _apply_deny_rules(self, request: PlanRequest, playbook_id: str, steps: list[Step],
                          targets: list[IdentifiedResource], facts: dict[str, dict[str, Any]], risk: RiskAssessment) -> None:
        rules = self.stack.deny_rules + list(request.user_context.deny_rules)
        by_id = {t.resource_id: t for t in targets}
        for step in steps:
            for target_id in step.targets:
                target = by_id.get(target_id)
                production = bool(facts.get(target_id, {}).get("production"))
                for rule in rules:
                    if rule_matches(rule, playbook_id, step, target, production, risk.level) and rule.reason not in step.denied_by:
                        step.denied_by.append(rule.reason)
            for reason in step.denied_by:
                if reason not in risk.denied_reasons:
                    risk.denied_reasons.append(reason)
        risk.denied = bool(risk.denied_reasons)

    def _classification(self, pb: Playbook | None, result: ClassifierResult) -> Classification:
        runner_up = [PlaybookScore(playbook=s.playbook_id, score=s.score) for s in result.ranked[1:4]]
        method = "rules+retrieval+llm" if self._llm_used else "rules+retrieval"
        if pb is None:
            return Classification(intent="unknown", system="aws", confidence=result.confidence, runner_up=runner_up,
                                  playbook=None, method=method)
        return Classification(intent=pb.intent, system=pb.system, service=pb.service, operation=pb.main_operation,
                              confidence=result.confidence, playbook=pb.id, runner_up=runner_up, method=method)

    def _covering(self, result: ClassifierResult, best: Playbook, verbs: list[str]) -> list[Candidate]:
        """Candidates for a request of several changes: the playbooks among the ranked ones that would also
        make the changes ``best`` does not (deleting an RDS instance takes a final snapshot), then ``best``."""
        mentioned = self.stack.classifier.mentioned
        covering = [s.playbook_id for s in result.ranked[:10] if s.playbook_id != best.id and s.type_fit >= 0
                    and set(verbs) <= mentioned[s.playbook_id]]
        return [Candidate(kind="playbook", label=self.stack.playbooks[pid].title, playbook=pid)
                for pid in [*covering[:2], best.id]]

    def _playbook_candidates(self, result: ClassifierResult, n: int) -> list[Candidate]:
        return [Candidate(kind="playbook", label=self.stack.playbooks[s.playbook_id].title, playbook=s.playbook_id)
                for s in result.ranked[:n]]

    def _clarify(self, request: PlanRequest, result: ClassifierResult, pb: Playbook | None, warnings: list[str],
                 question: str, candidates: list[Candidate]) -> PlanResponse:
        return PlanResponse(
            request_id=uuid.uuid4().hex, served_by=self.served_by, classification=self._classification(pb, result),
            identified_resources=request.identified_resources,
            explain_plan=f"Nothing will run yet. {question}",
            script=Script(steps=[]), risk_assessment=RiskAssessment(level="low", reasons=["no step planned"]),
            approval_required=False, clarification=Clarification(question=question, candidates=candidates),
            warnings=warnings, playbook_version=pb.version if pb else None, plan_hash=None,
        )

    def _explain(self, pb: Playbook, targets: list[IdentifiedResource], runnable: list[IdentifiedResource],
                 steps: list[Step], risk: RiskAssessment, result: ClassifierResult) -> str:
        lines = [f"{pb.title}: " + ", ".join(_describe(t) for t in targets) + "."]
        lines.append(f"Playbook {pb.id} v{pb.version} (confidence {result.confidence:.2f}).")
        for n, step in enumerate(steps, 1):
            wait = f"; then wait for {step.waiter.replace('_', ' ')}" if step.waiter else ""
            lines.append(f"Step {n}: {step.operation} on {', '.join(step.targets)} in "
                         f"{step.account_name or step.account_id or 'the default account'} / {step.region}{wait}.")
        skipped = [t.display_name for t in targets if t not in runnable]
        if skipped:
            lines.append("Not acted on (precondition failed): " + ", ".join(skipped) + ".")
        lines.append(f"Risk {risk.level}" + (": " + "; ".join(risk.reasons) if risk.reasons else "") + ".")
        if risk.impact:
            lines.append("Impact: " + risk.impact)
        if risk.rollback:
            lines.append("Rollback: " + risk.rollback)
        if risk.denied:
            lines.append("DENIED by policy: " + "; ".join(risk.denied_reasons) + ". It cannot be approved.")
        elif any(s.mutating for s in steps):
            lines.append("Approval is required before anything runs.")
        elif steps:
            lines.append("Read-only: no approval needed.")
        return "\n".join(lines)


def _sent_to(target: IdentifiedResource, steps: list[Step]) -> dict[str, Any]:
    """The API parameters the steps acting on ``target`` send, merged (what risk rules' param.<Member> read)."""
    out: dict[str, Any] = {}
    for step in steps:
        if target.resource_id in step.targets:
            out.update(step.parameters)
    return out


def _note_model_failure(warnings: list[str]) -> None:
    """The offline model crashed, hung or answered garbage (agent.llm.ModelFailed): the plan is what the
    rules alone give, and says so once."""
    if MODEL_FAILED not in warnings:
        warnings.append(MODEL_FAILED)


def _value_text(prompt: str, mentions: list[Mention], target: IdentifiedResource | None) -> str:
    """The prompt with the target's own name replaced by a sentinel: a name is never a value, but
    other resources' names can be (the instance to fail over to). ``target`` None: every name."""
    own = sorted((m for m in mentions if target is None or m.resource is target), key=lambda m: m.start, reverse=True)
    text = normalise(prompt)
    for m in own:
        text = text[: m.start] + "§" + text[m.end:]
    return text


def _sanitise_default(spec: ParamSpec, value: Any) -> Any:
    """Defaults built from resource ids may hold characters a name pattern refuses (an ARN's ':')."""
    if spec.kind == "identifier" and isinstance(value, str):
        cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", value).strip("-")
        return cleaned[:255] if cleaned and cleaned[0].isalpha() else ("x-" + cleaned)[:255]
    return value


def _describe(t: IdentifiedResource) -> str:
    facts = [x for x in (t.engine, "Multi-AZ" if t.multi_az else None, t.current_state) if x]
    where = " / ".join(x for x in (t.account_name or t.account_id, t.region) if x)
    return f"{t.display_name}" + (f" ({', '.join(facts)})" if facts else "") + (f" in {where}" if where else "")


# How a question says a canonical verb of agent.lexicon.VERBS.
_VERB_SAYS = {"purge": "empty (purge) it", "block_public": "block public access", "modify": "modify (resize) it",
              "image": "create an image", "failover": "fail over", "snapshot": "take a snapshot", "scale": "scale it",
              "redeploy": "redeploy it", "delete": "delete it", "terminate": "terminate it", "stop": "stop it",
              "start": "start it", "reboot": "reboot it", "enable": "enable it", "suspend": "suspend it",
              "resume": "resume it", "publish": "publish", "subscribe": "subscribe"}


def _one_request_question(planned: str, unplanned: list[str], both: str | None = None) -> str:
    """The question for a request of several changes, naming what the best match would leave undone."""
    undone = " or ".join(_VERB_SAYS.get(v, v) for v in unplanned)
    question = f"This asks for more than one change, and a plan makes one: '{planned}' would not {undone}. "
    if both:
        return question + f"'{both}' does both: plan that, or say which one to plan first."
    return question + "Which should I plan first? Ask for the other afterwards."


def _preferring(result: ClassifierResult, route: Route) -> ClassifierResult:
    """The classifier's result with the playbook the catalogue routed to ranked first: the catalogue agreed
    on the call it makes (verb and object), so it is a match whatever its own retrieval score."""
    if route.playbook_id is None or not result.ranked:
        return result
    ranked = sorted(result.ranked, key=lambda s: s.playbook_id != route.playbook_id)
    if ranked[0].playbook_id == result.ranked[0].playbook_id and not result.no_match:
        return result
    return ClassifierResult(ranked, max(result.confidence, route.confidence), result.prompt_verbs, result.types,
                            deletion_told_to_keep=result.deletion_told_to_keep, routed=True)
