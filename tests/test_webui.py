"""What the endpoint tells the UI about a plan, without a browser: which targets are production (the
banner), for a lookup that sent the same name from several accounts."""

from __future__ import annotations

from agent.protocol import (Classification, IdentifiedResource, PlanResponse, RiskAssessment, Script, Step)
from app.interfaces.endpoint import production_targets


def _orders_db(account_name: str, account_id: str) -> IdentifiedResource:
    return IdentifiedResource(resource_type="rds_db_instance", resource_id="orders-db", name="orders-db",
                              arn=f"arn:aws:rds:us-west-2:{account_id}:db:orders-db", account_id=account_id,
                              account_name=account_name, region="us-west-2", tags={"env": account_name})


def _plan(step_account: tuple[str, str], target: str = "orders-db") -> PlanResponse:
    name, account_id = step_account
    step = Step(step_id="step-1", service="rds", operation="DeleteDBInstance",
                parameters={"DBInstanceIdentifier": "orders-db"}, account_id=account_id, account_name=name,
                region="us-west-2", profile=name, mutating=True, command="aws rds delete-db-instance ...",
                argv=["aws"], targets=[target])
    return PlanResponse(request_id="r1", served_by="local",
                        classification=Classification(intent="delete", confidence=0.9),
                        identified_resources=[_orders_db("production", "111111111111"),
                                              _orders_db("staging", "222222222222")],
                        explain_plan="Delete orders-db", script=Script(steps=[step]),
                        risk_assessment=RiskAssessment(level="high"), approval_required=True)


def test_a_staging_plan_is_not_bannered_as_production_for_a_namesake():
    """'delete orders-db in staging': the lookup also sent production's orders-db (same resource id).
    The step runs in staging, so there is no production target (it was 'orders-db (production)')."""
    assert production_targets(_plan(("staging", "222222222222"))) == []


def test_the_production_namesake_is_bannered_when_the_step_runs_there():
    assert production_targets(_plan(("production", "111111111111"))) == ["orders-db (production)"]
    by_arn = _plan(("production", "111111111111"), target="arn:aws:rds:us-west-2:111111111111:db:orders-db")
    assert production_targets(by_arn) == ["orders-db (production)"]
