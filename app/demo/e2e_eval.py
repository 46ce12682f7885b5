"""The end-to-end evaluation: prompts as an operator types them, over the demo estate synced from
moto, through the client's real path (lookup in the local index → context → agent stack). Unlike the
planner evaluation (``agent.evaluation``), nobody hands the planner the right resources: the lookup
must find them, in the right account and region, or the case fails.

A case states what a careful operator expects: the operation, the playbook, the target *names*, the
account *name*, the region, whether approval is needed, or that the tool must ask instead of guess (and,
with ``question_contains``, what the question must say). A question about the estate is also answered
from the local index, as the service does (app.estate.answers); ``answer`` states what that answer must
say (``contains``) and which resources it is about (``resources``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from agent.evaluation import CaseResult, EvalReport, check, chose_operation
from agent.protocol import PlanResponse


_OWN_KEYS = ("targets", "account", "region", "parameters", "answer", "question_contains", "service", "mutating",
             "mentions")


def check_e2e(expect: dict[str, Any], response: PlanResponse) -> list[str]:
    """The planner checks (clarification, playbook, operation, approval), then targets by name and
    the account and region of the main step.

    Also the keys of tests/eval_e2e_blind4: ``service`` (of the main step), ``mutating: false`` (no step
    changes anything), ``answer: true`` with ``mentions`` (names the answer from the index must say); a
    question's case states no more than that."""
    said = _answer_problems(expect, response) + _question_problems(expect, response) + _change_problems(expect, response)
    if "answer" in expect and "clarification" not in expect:
        return said  # a question: answered from the index, nothing changed
    if expect.get("clarification") and response.clarification is None and not response.script.steps \
            and response.warnings:
        return said  # the sets say "ask or refuse": a plan with nothing to run and its reason is a refusal
    problems = said + check({k: v for k, v in expect.items() if k not in _OWN_KEYS}, response)
    if expect.get("clarification"):
        return problems
    steps = response.script.steps
    names = {}
    for r in response.identified_resources:
        for key in (r.resource_id, r.arn, r.name):
            if key:
                names[key] = r.name or r.resource_id
    if "targets" in expect:
        acted: list[str] = []
        for s in steps:
            acted += [names.get(t, t) for t in s.targets if names.get(t, t) not in acted]
        if sorted(acted) != sorted(expect["targets"]):
            problems.append(f"targets {acted} != {expect['targets']}")
    main = next((s for s in steps if s.mutating), steps[0] if steps else None)
    if "service" in expect and (main.service if main else response.classification.service) != expect["service"]:
        problems.append(f"service {main.service if main else response.classification.service} != {expect['service']}")
    if "account" in expect and (main is None or main.account_name != expect["account"]):
        problems.append(f"account {main.account_name if main else None} != {expect['account']}")
    if "region" in expect and (main is None or main.region != expect["region"]):
        problems.append(f"region {main.region if main else None} != {expect['region']}")
    # Parameters are named as the playbook names them, not as the API does: each expected value must be
    # one of the values the main step sends.
    sent = _values(main.parameters) if main else []
    for name, value in (expect.get("parameters") or {}).items():
        wanted = _values(value)
        if not all(any(str(w) == str(v) for v in sent) for w in wanted):
            problems.append(f"parameter {name}={value!r} not among the values sent {sent}")
    return problems


def _change_problems(expect: dict[str, Any], response: PlanResponse) -> list[str]:
    if expect.get("mutating") is False and any(s.mutating for s in response.script.steps):
        return [f"a change was planned: {[s.operation for s in response.script.steps if s.mutating]}"]
    return []


def _answer_problems(expect: dict[str, Any], response: PlanResponse) -> list[str]:
    wanted = expect.get("answer")
    if not wanted:
        return []
    if response.answer is None:
        return ["no answer from the estate"]
    text = response.answer.text.lower()
    if wanted is True:  # tests/eval_e2e_blind4: the names the answer must mention
        said = text + " " + " ".join(response.answer.resources).lower()
        return [f"answer does not mention {n!r}: {response.answer.text}" for n in expect.get("mentions") or []
                if str(n).lower() not in said]
    problems = [f"answer lacks {w!r}: {response.answer.text}" for w in wanted.get("contains", [])
                if str(w).lower() not in text]
    if "resources" in wanted and sorted(set(response.answer.resources)) != sorted(set(wanted["resources"])):
        problems.append(f"answer is about {response.answer.resources}, not {wanted['resources']}")
    return problems


def _question_problems(expect: dict[str, Any], response: PlanResponse) -> list[str]:
    words = expect.get("question_contains") or []
    question = response.clarification.question if response.clarification else ""
    return [f"the question does not say {w!r}: {question!r}" for w in words if str(w).lower() not in question.lower()]


def _values(data: Any) -> list[Any]:
    """Every scalar inside ``data``, depth first."""
    if isinstance(data, dict):
        return [v for item in data.values() for v in _values(item)]
    if isinstance(data, list):
        return [v for item in data for v in _values(item)]
    return [data]


def _refusal(request, response: PlanResponse, playbooks) -> str | None:
    from app.execution.verify import PlanRefused, TrustContext, verify_plan

    trust = TrustContext(resources=request.identified_resources, accounts=request.user_context.aws_accounts,
                         playbooks=playbooks, prompt=request.prompt)
    try:
        verify_plan(response, trust)
    except PlanRefused as exc:
        return str(exc)
    return None


def run_e2e(cases_file: Path, local_stack) -> EvalReport:
    """Start moto with the demo estate, sync it into a throwaway ``CLOUDOPS_HOME``, plan every case."""
    from app.config import save_config
    from app.estate.answers import answer_question
    from app.estate.context import build_request
    from app.demo.demo_estate import demo_config, simulated_estate
    from app.estate.estate import Estate

    cases = yaml.safe_load(cases_file.read_text(encoding="utf-8"))
    report = EvalReport()
    saved_home = os.environ.get("CLOUDOPS_HOME")
    with tempfile.TemporaryDirectory(prefix="cloudops-e2e-") as home, simulated_estate():
        os.environ["CLOUDOPS_HOME"] = home
        try:
            config = demo_config()
            save_config(config)
            estate = Estate(config)
            sync = estate.engine().run()
            if not sync.ok:
                raise RuntimeError(f"the demo estate did not sync: {sync.errors[:3]}")
            index = estate.lookup()
            stack = local_stack()
            planner = stack.planner("local")
            for case in cases:
                try:
                    request = build_request(case["prompt"], index, estate.store, config)
                    response = planner.plan(request)
                except Exception as exc:  # noqa: BLE001 - one case that breaks the client is a failure, not the end
                    report.results.append(CaseResult(case["id"], case["prompt"], False,
                                                     [f"the client failed: {type(exc).__name__}: {exc}"], 0.0, None,
                                                     chose=False))
                    continue
                if response.answer is None:  # as the service does: the client answers from its index
                    response.answer = answer_question(case["prompt"], index, estate.store)
                # Every plan is checked as the client checks it before anyone sees it (app/execution/verify.py):
                # a plan the client would refuse is a failure of the case, whatever it says.
                refused = _refusal(request, response, stack.playbooks)
                problems = ([f"refused by the client's verification: {refused}"] if refused else []) \
                    + check_e2e(case["expect"], response)
                report.results.append(CaseResult(case["id"], case["prompt"], not problems, problems,
                                                 response.classification.confidence, response.classification.playbook,
                                                 chose=chose_operation(response)))
            estate.close()
        finally:
            if saved_home is None:
                os.environ.pop("CLOUDOPS_HOME", None)
            else:
                os.environ["CLOUDOPS_HOME"] = saved_home
    return report
