"""Approvals pinned to the exact plan: the hash of every step's call, account, region and profile,
single use, expiring (default 10 minutes). A denied plan cannot be approved; a read-only plan needs none.

A plan runs at most once: ``claim_run`` records the request before its first step, in the same SQLite
file, so a second execute of that request (from another window, the CLI, or a replayed call) is refused
however it arrives, and an approval of a plan that already ran is refused too.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel

from agent.protocol import PlanResponse, plan_hash
from app.estate.resource_store import sqlite_engine
from app.home import private_file

DEFAULT_TTL = timedelta(minutes=10)


class ApprovalError(PermissionError):
    """Why a plan may not run: denied, not approved, expired, used, or not the plan that was approved."""


class Approval(SQLModel, table=True):
    __tablename__ = "approval"
    approval_id: str = Field(primary_key=True)
    plan_hash: str
    request_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class Run(SQLModel, table=True):
    """A plan that started running (once per request id)."""

    __tablename__ = "run"
    request_id: str = Field(primary_key=True)
    plan_hash: str | None = None
    started_at: datetime


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class ApprovalBook:
    def __init__(self, path: Path, ttl: timedelta = DEFAULT_TTL):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = sqlite_engine(private_file(path))  # 0600 before SQLite opens it: -wal/-shm follow
        SQLModel.metadata.create_all(self.engine, tables=[Approval.__table__, Run.__table__])
        self.ttl = ttl

    def approve(self, plan: PlanResponse, now: datetime | None = None) -> Approval:
        now = now or datetime.now(timezone.utc)
        if plan.clarification is not None or not plan.script.steps:
            raise ApprovalError("there is nothing to approve: the plan has no steps")
        if plan.risk_assessment.denied:
            raise ApprovalError("denied by policy: " + "; ".join(plan.risk_assessment.denied_reasons))
        if plan_hash(plan.script.steps) != plan.plan_hash:
            raise ApprovalError("the plan's steps do not match its plan_hash")
        if self.has_run(plan.request_id):
            raise ApprovalError("this plan already ran; plan again to run it again")
        approval = Approval(approval_id=secrets.token_urlsafe(16), plan_hash=plan.plan_hash, request_id=plan.request_id,
                            created_at=now, expires_at=now + self.ttl)
        with Session(self.engine) as session:
            session.add(approval)
            session.commit()
            session.refresh(approval)
        return approval

    def consume(self, approval_id: str, plan: PlanResponse, now: datetime | None = None) -> Approval:
        """Use an approval for ``plan`` exactly once; raises ApprovalError otherwise."""
        now = now or datetime.now(timezone.utc)
        with Session(self.engine) as session:
            approval = session.get(Approval, approval_id)
            if approval is None:
                raise ApprovalError("unknown approval")
            if approval.used_at is not None:
                raise ApprovalError("this approval was already used")
            if now >= _utc(approval.expires_at):
                raise ApprovalError("this approval has expired")
            if approval.plan_hash != plan_hash(plan.script.steps):
                raise ApprovalError("this approval is for another plan (steps, parameters, account or region differ)")
            # Conditional update: of two processes racing for one approval, exactly one wins.
            claimed = session.exec(update(Approval).where(Approval.approval_id == approval_id,
                                                          Approval.used_at.is_(None)).values(used_at=now))
            session.commit()
            if claimed.rowcount != 1:
                raise ApprovalError("this approval was already used")
            session.refresh(approval)
            return approval

    def has_run(self, request_id: str) -> bool:
        with Session(self.engine) as session:
            return session.get(Run, request_id) is not None

    def claim_run(self, plan: PlanResponse, now: datetime | None = None) -> None:
        """Record that ``plan`` starts running; ApprovalError when it ran (or started) before."""
        try:
            with Session(self.engine) as session:
                session.add(Run(request_id=plan.request_id, plan_hash=plan.plan_hash,
                                started_at=now or datetime.now(timezone.utc)))
                session.commit()
        except IntegrityError:
            raise ApprovalError("this plan already ran; plan again to run it again") from None

    def close(self) -> None:
        self.engine.dispose()
