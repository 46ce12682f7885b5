"""The catalogue evaluation: operator prompts over the breadth of the 13 services, scored the way issue 13
measures the planner on documentation examples.

A case expects a call (service, operation, ``also`` for equally right calls) or ``abstain: true`` (nothing in
the 13 services does it). The figures:

* right operation: the answer names the expected call (a plan, or a question about its target or a value);
* another operation chosen: it names a different call;
* another *mutating* operation chosen (target 0): the different call changes something;
* abstained, of the impossible: for ``abstain`` cases, no call named and no step.

The reliability table (``agent.evaluation.reliability_table``) buckets the confidence of the answers that
named a call against how often the call was right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.access_levels import access
from agent.evaluation import CaseResult, chose_operation, reliability_table, request_for
from agent.planner import Planner
from agent.protocol import PlanResponse


@dataclass
class CatalogueReport:
    results: list[CaseResult] = field(default_factory=list)
    possible: int = 0
    right: int = 0
    other: int = 0
    other_mutating: int = 0
    impossible: int = 0
    abstained: int = 0

    @property
    def accuracy(self) -> float:
        return sum(r.ok for r in self.results) / len(self.results) if self.results else 0.0

    def summary(self) -> str:
        lines = [f"catalogue eval: {sum(r.ok for r in self.results)}/{len(self.results)} correct ({self.accuracy:.1%})",
                 f"  right operation: {self.right}/{self.possible} ({_share(self.right, self.possible)})",
                 f"  another operation chosen: {self.other}/{len(self.results)} "
                 f"({_share(self.other, len(self.results))}); another MUTATING operation: {self.other_mutating}",
                 f"  abstained, of the impossible: {self.abstained}/{self.impossible} "
                 f"({_share(self.abstained, self.impossible)})"]
        lines += reliability_table(self.results)
        lines += [f"  FAIL {r.case_id}: {r.prompt!r}: {'; '.join(r.problems)}" for r in self.results if not r.ok]
        return "\n".join(lines)


def _share(n: int, d: int) -> str:
    return f"{n / d:.1%}" if d else "n/a"


def score(expect: dict[str, Any], response: PlanResponse) -> tuple[bool, str | None, bool]:
    """(right, the call named as "service.Operation" or None, that call mutates)."""
    c = response.classification
    named = f"{c.service}.{c.operation}" if c.service and c.operation else None
    if named is None and response.script.steps:
        step = response.script.steps[0]
        named = f"{step.service}.{step.operation}"
    mutating = named is not None and access(*named.split(".", 1)).mutating
    if expect.get("abstain"):
        return named is None and not response.script.steps, named, mutating
    wanted = {f"{expect['service']}.{op}" for op in [expect["operation"], *expect.get("also", [])]}
    return named in wanted, named, mutating


def run(planner: Planner, directory: Path, cases_file: str = "cases.yaml") -> CatalogueReport:
    estate = yaml.safe_load((directory / "estate.yaml").read_text(encoding="utf-8"))
    cases = yaml.safe_load((directory / cases_file).read_text(encoding="utf-8"))
    report = CatalogueReport()
    for case in cases:
        response = planner.plan(request_for(case, estate))
        expect = case["expect"]
        ok, named, mutating = score(expect, response)
        if expect.get("abstain"):
            report.impossible += 1
            report.abstained += ok
        else:
            report.possible += 1
            report.right += ok
        if named is not None and not ok:
            report.other += 1
            report.other_mutating += mutating
        wanted = "no operation" if expect.get("abstain") else f"{expect['service']}.{expect['operation']}"
        problems = [] if ok else [f"{named or 'no operation'} != {wanted}"
                                  + (f" ({response.clarification.question[:120]})" if response.clarification else "")]
        report.results.append(CaseResult(case["id"], case["prompt"], ok, problems, response.classification.confidence,
                                         named, chose=chose_operation(response)))
    return report
