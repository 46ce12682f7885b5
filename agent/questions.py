"""A question never yields a change.

"which instances are stopped?" shares its words with "stop the instances", and the classifier may rank the
change first; "is the bastion running?" is not a request to run anything. Whatever ranks first, a prompt
phrased as a question (agent.prompt.question_form: not "can you stop it?", which is a request) is answered
by reading: the best-ranked read-only playbook for the same resource types, or no step at all. The client
answers the question itself from its index (app.estate.answers); the read-only step confirms it live.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.classifier import Scored
from agent.playbook import Playbook
from agent.prompt import ParsedPrompt


@dataclass(frozen=True)
class QuestionGuard:
    """``playbook``: what to plan (the best one, or the read-only one that answers the question instead);
    None when no playbook reads what was asked, and ``note`` says why nothing is planned."""

    playbook: Playbook | None
    note: str | None = None

    @property
    def changed(self) -> bool:
        return self.note is not None and self.playbook is not None


def guard_question(parsed: ParsedPrompt, best: Playbook, ranked: list[Scored],
                   playbooks: dict[str, Playbook]) -> QuestionGuard:
    if parsed.question is None or best.read_only:
        return QuestionGuard(best)
    fit = ranked[0].type_fit if ranked else 0.0
    types = set(best.resource_types)
    for scored in ranked:
        candidate = playbooks[scored.playbook_id]
        if candidate.read_only and scored.type_fit >= fit and types & set(candidate.resource_types):
            return QuestionGuard(candidate, f"this reads as a question, so nothing is changed: {candidate.title.lower()} "
                                            f"instead of {best.title.lower()} (say it as a request to plan a change)")
    return QuestionGuard(None, f"This reads as a question, and a question changes nothing; no read-only operation "
                               f"answers it. To {best.title[0].lower() + best.title[1:]}, say it as a request.")
