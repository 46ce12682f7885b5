"""The planner evaluation sets. Prints accuracy and calibration; fails under the floor.

Every set was written blind (by sessions that had not seen the planner) and its first-run accuracy is
recorded in tests/eval/README.md; once its failures have been looked at, a set is a development set.
"""

import pytest

from agent.evaluation import run
from conftest import ROOT

SETS = [
    ("development (tests/eval/plan_cases.yaml)", ROOT / "tests" / "eval", "plan_cases.yaml", 0.95),
    ("held-out 1 (tests/eval/holdout_cases.yaml)", ROOT / "tests" / "eval", "holdout_cases.yaml", 0.90),
    ("held-out 2 (tests/eval_holdout2)", ROOT / "tests" / "eval_holdout2", "plan_cases.yaml", 0.90),
]


@pytest.mark.parametrize("label, directory, cases, floor", SETS, ids=[s[0].split(" (")[0] for s in SETS])
def test_evaluation_set(planner, capsys, label, directory, cases, floor):
    report = run(planner, directory, cases)
    with capsys.disabled():
        print(f"\n[{label}]\n" + report.summary())
    assert len(report.results) >= 60
    assert report.accuracy >= floor, report.summary()
    # check() fails a clarification that carries a mutating step; no case may do that.
    assert not [r for r in report.results if any("no mutating step" in p for p in r.problems)]


E2E_SETS = [("end to end (tests/eval_e2e)", ROOT / "tests" / "eval_e2e", 0.95),
            ("end to end held-out (tests/eval_e2e_holdout)", ROOT / "tests" / "eval_e2e_holdout", 0.85),
            ("end to end held-out 3 (tests/eval_e2e_blind3)", ROOT / "tests" / "eval_e2e_blind3", 0.90),
            # Blind set 4: first run 64.6% (188/291, README); its misses were read after that run, so its figure is a
            # development figure now (72.2% when this floor was set).
            ("end to end held-out 4 (tests/eval_e2e_blind4)", ROOT / "tests" / "eval_e2e_blind4", 0.68)]


@pytest.mark.slow
@pytest.mark.parametrize("label, directory, floor", E2E_SETS, ids=[s[0].split(" (")[0] for s in E2E_SETS])
def test_end_to_end_evaluation_set(stack, capsys, label, directory, floor):
    """Prompts over the demo estate synced from moto, through the client's real lookup and context."""
    from app.demo.e2e_eval import run_e2e

    report = run_e2e(directory / "cases.yaml", lambda: stack)
    with capsys.disabled():
        print(f"\n[{label}]\n" + report.summary())
    assert len(report.results) >= 60
    assert report.accuracy >= floor, report.summary()
    if "held-out" not in label:  # a held-out miss is reported, not fixed against the set
        assert not [r for r in report.results if any("no mutating step" in p for p in r.problems)]
