"""Human output of a plan on a terminal: explain plan, commands, risk in colour, approval."""

from __future__ import annotations

import click

from agent.protocol import PlanResponse

RISK_COLOURS = {"low": "green", "medium": "yellow", "high": "red", "critical": "magenta"}


def render_plan(plan: PlanResponse) -> str:
    out: list[str] = []
    c = plan.classification
    head = f"{c.playbook or 'no playbook'}  (confidence {c.confidence:.2f}, served by {plan.served_by})"
    out.append(click.style(head, bold=True))
    if plan.clarification:
        out.append(click.style("? " + plan.clarification.question, fg="cyan", bold=True))
        for n, cand in enumerate(plan.clarification.candidates, 1):
            out.append(f"  {n}. {cand.label}")
    else:
        out.append(plan.explain_plan)
        for step in plan.script.steps:
            tag = "mutating" if step.mutating else "read-only"
            denied = click.style("  DENIED", fg="red", bold=True) if step.denied_by else ""
            out.append(f"  {step.step_id} [{tag}]{denied}  " + click.style(step.command, fg="bright_white"))
        risk = plan.risk_assessment
        out.append("Risk: " + click.style(risk.level.upper(), fg=RISK_COLOURS[risk.level], bold=True))
        if plan.approval_required and not risk.denied:
            out.append(click.style("Approval required.", bold=True))
            if plan.confirmation and plan.confirmation.phrase:
                out.append(click.style(f"To approve, type {plan.confirmation.phrase!r} "
                                       f"({'; '.join(plan.confirmation.reasons)}).", fg="red", bold=True))
            if plan.confirmation and plan.confirmation.stale:
                out.append(click.style(f"Data may be out of date: {plan.confirmation.stale}.", fg="yellow", bold=True))
    for warning in plan.warnings:
        out.append(click.style("warning: " + warning, fg="yellow"))
    return "\n".join(out)
