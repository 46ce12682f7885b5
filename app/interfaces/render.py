"""Human output of a plan on a terminal: the answer from the estate, explain plan, commands, risk in colour,
approval."""

from __future__ import annotations

import re

import click

from agent.protocol import PlanResponse

RISK_COLOURS = {"low": "green", "medium": "yellow", "high": "red", "critical": "magenta"}


# Lines of the planner's explain_plan that the header, the risk line and the approval line already say.
_SAID_ELSEWHERE = re.compile(r"^(?:Playbook \S+ v\S+ \(confidence [\d.]+\)\.|Risk (?:low|medium|high|critical)\b.*"
                             r"|Approval is required before anything runs\.|Read-only: no approval needed\.)$")


def render_plan(plan: PlanResponse) -> str:
    """The plan for a terminal: the answer from the estate first (a question), then what will run and why;
    confidence, risk and approval each said once (the explain plan's own lines for them are folded in)."""
    out: list[str] = []
    c = plan.classification
    version = f" v{plan.playbook_version}" if c.playbook and plan.playbook_version else ""
    head = f"{c.playbook or 'no playbook'}{version}  (confidence {c.confidence:.2f}, served by {plan.served_by})"
    out.append(click.style(head, bold=True))
    if plan.answer:
        out.append(click.style("Answer: ", fg="green", bold=True) + plan.answer.text)
    if plan.clarification:
        out.append(click.style("? " + plan.clarification.question, fg="cyan", bold=True))
        for n, cand in enumerate(plan.clarification.candidates, 1):
            out.append(f"  {n}. {cand.label}")
    else:
        out += [line for line in plan.explain_plan.splitlines() if not _SAID_ELSEWHERE.match(line.strip())]
        for step in plan.script.steps:
            tag = "mutating" if step.mutating else "read-only"
            denied = click.style("  DENIED", fg="red", bold=True) if step.denied_by else ""
            out.append(f"  {step.step_id} [{tag}]{denied}  " + click.style(step.command, fg="bright_white"))
        risk = plan.risk_assessment
        reasons = f": {'; '.join(risk.reasons)}" if risk.reasons else ""
        out.append("Risk: " + click.style(risk.level.upper(), fg=RISK_COLOURS[risk.level], bold=True) + reasons)
        if plan.approval_required and not risk.denied:
            out.append(click.style("Approval required.", bold=True))
            if plan.confirmation and plan.confirmation.phrase:
                out.append(click.style(f"To approve, type {plan.confirmation.phrase!r} "
                                       f"({'; '.join(plan.confirmation.reasons)}).", fg="red", bold=True))
            if plan.confirmation and plan.confirmation.stale:
                out.append(click.style(f"Data may be out of date: {plan.confirmation.stale}.", fg="yellow", bold=True))
        elif plan.script.steps and not risk.denied:
            out.append("Read-only: no approval needed.")
    for warning in plan.warnings:
        out.append(click.style("warning: " + warning, fg="yellow"))
    return "\n".join(out)
