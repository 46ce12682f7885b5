"""The local audit trail: every plan, approval, denial, refusal and executed step, append-only.

Append-only is enforced by SQLite itself (triggers abort any UPDATE or DELETE), not by convention, and
the trail lives in its own file so that rebuilding the index never touches it. Parameters are stored
as planned (resource ids, values); there is nowhere in a plan for a credential to be.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Field, Session, SQLModel, select

from app.estate.resource_store import sqlite_engine
from app.home import private_file


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    kind: str  # plan | approval | denial | refusal | step
    request_id: str | None = None
    prompt: str | None = None
    plan_hash: str | None = None
    account_id: str | None = None
    region: str | None = None
    operation: str | None = None
    parameters: str | None = None
    outcome: str | None = None
    aws_request_id: str | None = None
    detail: str | None = None
    resource: str | None = None  # the names of what the event is about
    account_name: str | None = None
    actor: str | None = None  # who approved or denied (OS user and the way in: cli, app)


# Columns added after the first release: an older audit.db gains them (ALTER TABLE ADD COLUMN keeps every
# row; the append-only triggers guard UPDATE and DELETE, not the schema).
_ADDED_COLUMNS = ("resource", "account_name", "actor")


_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END",
]


class AuditTrail:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = sqlite_engine(private_file(path))  # 0600 before SQLite opens it: -wal/-shm follow
        SQLModel.metadata.create_all(self.engine, tables=[AuditEvent.__table__])
        with self.engine.begin() as conn:
            present = {row[1] for row in conn.execute(text("PRAGMA table_info(audit)"))}
            for column in _ADDED_COLUMNS:
                if column not in present:
                    conn.execute(text(f"ALTER TABLE audit ADD COLUMN {column} VARCHAR"))
            for statement in _TRIGGERS:
                conn.execute(text(statement))

    def record(self, kind: str, **fields: Any) -> None:
        if isinstance(fields.get("parameters"), (dict, list)):
            fields["parameters"] = json.dumps(fields["parameters"], sort_keys=True, default=str)
        with Session(self.engine) as session:
            session.add(AuditEvent(at=datetime.now(timezone.utc), kind=kind, **fields))
            session.commit()

    def events(self, limit: int = 100) -> list[AuditEvent]:
        with Session(self.engine) as session:
            return list(session.exec(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)).all())

    def close(self) -> None:
        self.engine.dispose()
