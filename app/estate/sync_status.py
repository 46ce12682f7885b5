"""Sync status per scope (account x region x service) in SQLite: last success, last error, retries,
counts and duration. What `cloudops status` shows and the tray summarises."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, select


class ScopeStatus(SQLModel, table=True):
    __tablename__ = "sync_status"
    scope: str = Field(primary_key=True)
    account_id: str
    account_name: str
    region: str
    service: str
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    retries: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    count: int = 0
    duration_s: float = 0.0


class StatusBook:
    def __init__(self, engine: Engine):
        self.engine = engine
        SQLModel.metadata.create_all(engine, tables=[ScopeStatus.__table__])

    def record(self, status: ScopeStatus) -> None:
        with Session(self.engine) as session:
            existing = session.get(ScopeStatus, status.scope)
            if existing is None:
                session.add(status)
            else:
                for key, value in status.model_dump(exclude_unset=True).items():
                    setattr(existing, key, value)
            session.commit()

    def get(self, scope: str) -> ScopeStatus | None:
        with Session(self.engine) as session:
            return session.get(ScopeStatus, scope)

    def all(self) -> list[ScopeStatus]:
        with Session(self.engine) as session:
            return list(session.exec(select(ScopeStatus).order_by(ScopeStatus.scope)).all())
