"""Deterministic classification: which playbook does the prompt ask for?

Four signals, each cheap and explainable, combined linearly:
- dense similarity of the (name-masked) prompt to the playbook's title and utterances,
- lexical (IDF-weighted) overlap with the same texts,
- the verb lexicon: canonical verbs in the prompt against the playbook's own verbs,
- resource-type compatibility with what the client identified (or the nouns in the prompt).
The confidence is a logistic function of the winning score and its margin over the runner-up;
``cloudops eval`` prints how well it is calibrated on the evaluation set.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from botocore import xform_name

from agent.lexicon import clause_verbs, correct_typos, lists_resources, ordered_verbs, types_in, verbs_in
from agent.playbook import Playbook
from agent.playbook_index import PlaybookIndex

W_DENSE, W_LEXICAL, W_VERB, W_TYPE = 0.50, 0.15, 0.30, 0.30
_TOTAL = W_DENSE + W_LEXICAL + W_VERB + W_TYPE
NO_MATCH_SCORE = 0.40   # below this (normalised score), nothing fits: ask instead of guessing
NO_MATCH_DENSE = 0.30   # the prompt resembles no playbook text at all
AMBIGUOUS_CONFIDENCE = 0.40
# Verbs that ask for a change. When the prompt leads with one and the best playbook only reads (and does
# not stand for that verb), the request is something no playbook does ("delete the stack" must not be
# answered with "describe the stack"): ask instead. (Applied to changing playbooks too, it refused
# "X is empty now, delete the bucket": the first verb is not always the request.)
# Only verbs that are unmistakably imperative count ("run", "set", "public" also occur in questions), and a
# prompt phrased as a question never does.
CHANGE_VERBS = frozenset({"stop", "start", "reboot", "failover", "snapshot", "image", "modify", "delete", "terminate",
                          "enable", "suspend", "resume", "purge", "scale", "redeploy", "publish", "subscribe"})
# "Empty the bucket but keep it", "terminate it, keep the volume": the prompt forbids what a deleting
# playbook would do, and no plan can honour the exception, so a deleting best match becomes a question.
_KEEP = re.compile(r"\b(?:keep|keeping|retain|preserve)\s+(?:it|them|the\s+\w+|this\s+\w+|that\s+\w+)\b"
                   r"|\b(?:don'?t|do\s+not|without|never)\s+(?:delete|deleting|remove|removing|drop|dropping)\b")
_DELETING_VERBS = frozenset({"delete", "terminate"})
# The changes a second clause can ask for ("... and block public access" too).
_CLAUSE_CHANGES = CHANGE_VERBS | {"block_public"}
_CAPITALISED_MID_SENTENCE = re.compile(r"(?<=[a-z0-9,;:]\s)([A-Z][a-z]+)\b")
_QUESTION = re.compile(r"^\s*(is|are|was|were|has|have|had|did|does|when|what|whats|which|why|how|where|who)\b|\?\s*$")


@dataclass(frozen=True)
class Scored:
    playbook_id: str
    score: float
    dense: float
    lexical: float
    verb: float
    type_fit: float


@dataclass(frozen=True)
class ClassifierResult:
    ranked: list[Scored]
    confidence: float
    prompt_verbs: frozenset[str]
    types: frozenset[str]
    change_answered_by_read: bool = False
    deletion_told_to_keep: bool = False
    routed: bool = False  # the operation catalogue agreed on this playbook's call (agent.catalogue_plan)

    @property
    def best(self) -> Scored | None:
        return self.ranked[0] if self.ranked else None

    @property
    def no_match(self) -> bool:
        if not self.ranked:
            return True
        if self.routed:
            return self.deletion_told_to_keep
        best = self.ranked[0]
        # Little resemblance to any playbook text is still a match when the verb and the identified
        # resource's type both fit ("kick off catalog-sync"); otherwise it is a question.
        strong_rules = best.verb > 0.5 and best.type_fit == 1.0
        return (best.score < NO_MATCH_SCORE or (best.dense < NO_MATCH_DENSE and not strong_rules)
                or (best.verb <= 0 and best.dense < 0.45) or self.change_answered_by_read or self.deletion_told_to_keep)


def playbook_verbs(pb: Playbook) -> frozenset[str]:
    """The canonical verbs a playbook stands for: those of its intent, title and API operations
    (RebootDBInstance with ForceFailover is a reboot too), and any verb in 40% of its utterances."""
    operations = " ".join(xform_name(step.operation, " ") for step in pb.steps)
    core = verbs_in(pb.intent.replace("_", " ")) | verbs_in(pb.title) | verbs_in(operations)
    counts: Counter[str] = Counter()
    for utterance in pb.utterances:
        counts.update(verbs_in(utterance))
    frequent = {v for v, n in counts.items() if n >= 0.4 * len(pb.utterances)}
    return frozenset(core | frequent)


def mentioned_verbs(pb: Playbook) -> frozenset[str]:
    """The verbs a playbook stands for and those its parameters name: deleting an RDS instance takes a final
    snapshot (``final_snapshot_name``), so "take a final snapshot of X and delete it" is one request for it.
    (Not the words of its impact or rollback, which say what follows or what would undo it.)"""
    return playbook_verbs(pb) | frozenset(v for p in pb.parameters for v in verbs_in(p.name.replace("_", " ")))


def unplanned_changes(prompt: str, covered: frozenset[str], original: str = "") -> list[str]:
    """Changes a later clause of ``prompt`` asks for that an operation standing for ``covered`` would not
    make: "take a final snapshot of X and delete it" planned as a snapshot leaves "delete" unplanned. Empty
    for a one-clause prompt and for questions. ``original``: the prompt as typed, whose capitalised words
    mid-sentence are values ("resume Launch and Terminate"), not verbs."""
    if _QUESTION.search(prompt.lower()):
        return []
    values = frozenset(w.lower() for w in _CAPITALISED_MID_SENTENCE.findall(original))
    asked = [[v for v in verbs if v in _CLAUSE_CHANGES] for verbs in clause_verbs(prompt, values)]
    asked = [verbs for verbs in asked if verbs]
    if len(asked) < 2:
        return []
    missing: list[str] = []
    for verbs in asked:
        if not set(verbs) & covered:
            missing += [v for v in verbs if v not in missing]
    return missing


def verb_fit(prompt_verbs: list[str], pb_verbs: frozenset[str]) -> float:
    """How well a playbook's verbs cover the prompt's; the first verb (the imperative, or "describe"
    for a question) counts double, and verbs the playbook would do unasked cost."""
    if not prompt_verbs or not pb_verbs:
        return 0.0
    weights = {v: (2.0 if i == 0 else 1.0) for i, v in enumerate(prompt_verbs)}
    covered = sum(w for v, w in weights.items() if v in pb_verbs) / sum(weights.values())
    unasked = len(pb_verbs - set(prompt_verbs)) / len(pb_verbs)
    return covered - 0.6 * unasked


def confidence(best: float, runner_up: float | None) -> float:
    margin = best - (runner_up if runner_up is not None else 0.0)
    z = 14.0 * margin + 6.0 * (best - NO_MATCH_SCORE) - 1.0
    return round(1.0 / (1.0 + math.exp(-z)), 3)


class Classifier:
    def __init__(self, playbooks: dict[str, Playbook], index: PlaybookIndex):
        self.playbooks = playbooks
        self.index = index
        self.verbs = {pid: playbook_verbs(pb) for pid, pb in playbooks.items()}
        self.mentioned = {pid: mentioned_verbs(pb) for pid, pb in playbooks.items()}
        self.vocabulary = frozenset(w for pb in playbooks.values() for text in (pb.title, *pb.utterances)
                                    for w in re.findall(r"[a-z]+", text.lower()))

    def classify(self, masked_prompt: str, resource_types: set[str], *, named: bool = False) -> ClassifierResult:
        """Rank every playbook for ``masked_prompt``; ``resource_types`` are the targets' types if known.
        ``named``: the prompt names resources of those types, so a playbook that cannot act on any of them
        is counted against, not merely not for ("restart api-service", an ECS service, is no EC2 reboot)."""
        masked_prompt = correct_typos(masked_prompt, self.vocabulary)
        prompt_verbs = ordered_verbs(masked_prompt)
        types = set(resource_types) or types_in(masked_prompt)
        hits = {h.playbook_id: h for h in self.index.search(masked_prompt, limit=200)}
        # "list the sns topics": the topics themselves, not what is inside one (its subscriptions, a
        # bucket's objects), so a playbook that lists contents gets no credit for the verb.
        listing = lists_resources(masked_prompt)
        ranked: list[Scored] = []
        for pid, pb in self.playbooks.items():
            hit = hits.get(pid)
            dense = hit.dense if hit else 0.0
            lexical = hit.lexical if hit else 0.0
            verb = verb_fit(prompt_verbs, self.verbs[pid])
            if listing and "list" in self.verbs[pid]:
                verb = min(verb, 0.0)
            if types:
                type_fit = 1.0 if types & set(pb.resource_types) else (-1.0 if named else 0.0)
            else:
                type_fit = 0.5
            score = (W_DENSE * dense + W_LEXICAL * lexical + W_VERB * verb + W_TYPE * type_fit) / _TOTAL
            ranked.append(Scored(pid, round(score, 4), round(dense, 4), round(lexical, 4), round(verb, 4), type_fit))
        ranked.sort(key=lambda s: (-s.score, s.playbook_id))
        conf = confidence(ranked[0].score, ranked[1].score if len(ranked) > 1 else None) if ranked else 0.0
        best = self.playbooks[ranked[0].playbook_id] if ranked else None
        change_by_read = bool(best and prompt_verbs and prompt_verbs[0] in CHANGE_VERBS and best.read_only
                              and prompt_verbs[0] not in self.verbs[best.id]
                              and not _QUESTION.search(masked_prompt.lower()))

        told_to_keep = bool(best and self.verbs[best.id] & _DELETING_VERBS and _KEEP.search(masked_prompt.lower()))
        return ClassifierResult(ranked, conf, frozenset(prompt_verbs), frozenset(types), change_by_read, told_to_keep)
