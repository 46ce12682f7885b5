"""The planner evaluation: (prompt, identified resources) cases with the plan an operator expects.

A case is correct only when every expectation it states holds (playbook, operation, targets, the
parameters it names, risk, approval, clarification, account). The report also buckets the
classifier's confidence against correctness, which is how the confidence is checked for calibration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.planner import Planner
from agent.protocol import PlanRequest, PlanResponse


@dataclass
class CaseResult:
    case_id: str
    prompt: str
    ok: bool
    problems: list[str]
    confidence: float
    playbook: str | None
    chose: bool = True  # the answer named an operation (a plan, or a question about its target or values)


# Confidence buckets of the reliability table: where a well calibrated planner's accuracy equals its confidence.
BUCKETS = [(0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.0001)]


def reliability(results: list["CaseResult"]) -> tuple[list[tuple[str, int, float, float]], float]:
    """(bucket, answers, mean confidence, accuracy) over the answers that chose an operation, and the expected
    calibration error (the answers' weighted gap between confidence and accuracy)."""
    chosen = [r for r in results if r.chose]
    rows = []
    gap = 0.0
    for lo, hi in BUCKETS:
        inside = [r for r in chosen if lo <= r.confidence < hi]
        if inside:
            mean = sum(r.confidence for r in inside) / len(inside)
            acc = sum(r.ok for r in inside) / len(inside)
            rows.append((f"{lo:.2f}-{min(hi, 1.0):.2f}", len(inside), mean, acc))
            gap += len(inside) * abs(mean - acc)
    return rows, (gap / len(chosen) if chosen else 0.0)


def reliability_table(results: list["CaseResult"]) -> list[str]:
    rows, ece = reliability(results)
    chosen = sum(r.chose for r in results)
    lines = [f"  reliability (answers that chose an operation: {chosen} of {len(results)}; "
             f"expected calibration error {ece:.3f})",
             "    confidence   answers  mean conf  accuracy"]
    lines += [f"    {b:<12} {n:>7}  {mean:>9.2f}  {acc:>8.0%}" for b, n, mean, acc in rows]
    abstained = [r for r in results if not r.chose]
    if abstained:
        lines.append(f"    no operation named: {len(abstained)} answers, {sum(r.ok for r in abstained)} of them right")
    return lines


@dataclass
class EvalReport:
    results: list[CaseResult] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(r.ok for r in self.results) / len(self.results) if self.results else 0.0

    def calibration(self) -> list[tuple[str, int, float]]:
        """(confidence bucket, answers, accuracy) over the answers that chose an operation."""
        return [(b, n, acc) for b, n, _, acc in reliability(self.results)[0]]

    def summary(self) -> str:
        failed = [r for r in self.results if not r.ok]
        lines = [f"planner eval: {sum(r.ok for r in self.results)}/{len(self.results)} correct "
                 f"({self.accuracy:.1%})"]
        lines += reliability_table(self.results)
        lines += [f"  FAIL {r.case_id}: {r.prompt!r} -> {r.playbook}: {'; '.join(r.problems)}" for r in failed]
        return "\n".join(lines)


def load_cases(directory: Path, cases_file: str = "plan_cases.yaml") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    estate = yaml.safe_load((directory / "estate.yaml").read_text(encoding="utf-8"))
    cases = yaml.safe_load((directory / cases_file).read_text(encoding="utf-8"))
    return estate, cases


def request_for(case: dict[str, Any], estate: dict[str, Any]) -> PlanRequest:
    by_key = {r["key"]: {k: v for k, v in r.items() if k != "key"} for r in estate["resources"]}
    return PlanRequest(prompt=case["prompt"], identified_resources=[by_key[k] for k in case.get("resources", [])],
                       user_context={"aws_accounts": estate["accounts"], "user_id": "eval"})


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(_subset(e, a) for e, a in zip(expected, actual))
    return str(expected) == str(actual)


def check(expect: dict[str, Any], response: PlanResponse) -> list[str]:
    problems: list[str] = []
    steps = response.script.steps
    wants_clarification = bool(expect.get("clarification", False))
    if wants_clarification != (response.clarification is not None):
        problems.append("expected a clarification" if wants_clarification else
                        f"unexpected clarification: {response.clarification.question if response.clarification else ''}")
    if wants_clarification:
        if any(s.mutating for s in steps):
            problems.append("a clarification must carry no mutating step")
        return problems
    if "playbook" in expect and expect["playbook"] != response.classification.playbook:
        problems.append(f"playbook {response.classification.playbook} != {expect['playbook']}")
    main = next((s for s in steps if s.mutating), steps[0] if steps else None)
    if "operation" in expect and (main is None or main.operation != expect["operation"]):
        problems.append(f"operation {main.operation if main else None} != {expect['operation']}")
    if "targets" in expect:
        acted = []
        for s in steps:
            acted += [t for t in s.targets if t not in acted]
        if sorted(acted) != sorted(expect["targets"]):
            problems.append(f"targets {acted} != {expect['targets']}")
    if "parameters" in expect and (main is None or not _subset(expect["parameters"], main.parameters)):
        problems.append(f"parameters {main.parameters if main else None} lack {expect['parameters']}")
    if "risk" in expect and response.risk_assessment.level != expect["risk"]:
        problems.append(f"risk {response.risk_assessment.level} != {expect['risk']}")
    if "approval_required" in expect and response.approval_required != expect["approval_required"]:
        problems.append(f"approval_required {response.approval_required} != {expect['approval_required']}")
    if "account_id" in expect and (main is None or main.account_id != str(expect["account_id"])):
        problems.append(f"account {main.account_id if main else None} != {expect['account_id']}")
    return problems


def run(planner: Planner, directory: Path, cases_file: str = "plan_cases.yaml") -> EvalReport:
    estate, cases = load_cases(directory, cases_file)
    report = EvalReport()
    for case in cases:
        response = planner.plan(request_for(case, estate))
        problems = check(case["expect"], response)
        report.results.append(CaseResult(case["id"], case["prompt"], not problems, problems,
                                         response.classification.confidence, response.classification.playbook,
                                         chose=chose_operation(response)))
    return report


def chose_operation(response: PlanResponse) -> bool:
    """Whether the answer named an operation: a plan, or a question about the target or a value of a named
    operation (an abstention or "which operation do you mean?" names none)."""
    return bool(response.script.steps) or response.classification.operation is not None
