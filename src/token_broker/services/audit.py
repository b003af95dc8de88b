"""The audit log: one row per change and per refused attempt, written in the transaction of the change it records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, select
from sqlalchemy.orm import Session

from token_broker.errors import BrokerError
from token_broker.services.actors import Actor
from token_broker.store.database import Database
from token_broker.store.lean_write import LeanWrite
from token_broker.store.models import AuditEvent, UTCDateTime, Workspace, utcnow
from token_broker.store.raw_statements import RawCursor, RawStatement

T = TypeVar("T")
_INSERT = RawStatement(
    """
    INSERT INTO audit_events
        (occurred_at, actor, workspace_id, action, outcome, reason, target_id, client_address, details)
    VALUES (:occurred_at, :actor, :workspace_id, :action, :outcome, :reason, :target_id, :client_address, :details)
    """,
    {"occurred_at": UTCDateTime(), "details": JSON()},
)


@dataclass
class AuditEntry:
    """What the work under audit fills in as it learns it: the workspace, the target and any non-secret details."""

    action: str
    workspace_id: int | None = None
    target_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _add(session: Session, actor: Actor, entry: AuditEntry, outcome: str, reason: str | None) -> None:
    session.add(
        AuditEvent(
            occurred_at=utcnow(),
            actor=actor.label,
            workspace_id=entry.workspace_id,
            action=entry.action,
            outcome=outcome,
            reason=reason,
            target_id=entry.target_id,
            client_address=actor.client_address,
            details=entry.details,
        )
    )


def insert_row(session: Session | LeanWrite, actor: Actor, entry: AuditEntry, outcome: str, reason: str | None) -> None:
    """`record`, as one INSERT on the transaction's DB-API cursor instead of an object for the session's flush (for
    the token endpoint's hot path, which writes no other object); the row is the one `record` would write."""
    cursor = RawCursor(session)
    try:
        cursor.execute(
            _INSERT,
            {
                "occurred_at": utcnow(),
                "actor": actor.label,
                "workspace_id": entry.workspace_id,
                "action": entry.action,
                "outcome": outcome,
                "reason": reason,
                "target_id": entry.target_id,
                "client_address": actor.client_address,
                "details": entry.details,
            },
        )
    finally:
        cursor.close()


def record(session: Session, actor: Actor, entry: AuditEntry, outcome: str, reason: str | None) -> None:
    """Write one audit row in the caller's transaction (for flows that manage their own transaction)."""
    _add(session, actor, entry, outcome, reason)


def run_audited(database: Database, actor: Actor, action: str, work: Callable[[Session, AuditEntry], T]) -> T:
    """Run `work` in one write transaction with its audit row; a refusal is audited too, and nothing of it kept.

    The work runs inside a savepoint: when it raises a BrokerError, whatever it changed is rolled back, and the
    refusal's audit row commits on its own before the error goes on to the caller.
    """
    entry = AuditEntry(action=action)
    refusal: BrokerError | None = None
    with database.write() as session:
        try:
            with session.begin_nested():
                result = work(session, entry)
        except BrokerError as error:
            refusal = error
            _add(session, actor, entry, "refused", error.code)
        else:
            _add(session, actor, entry, "ok", None)
    if refusal is not None:
        raise refusal
    return result


@dataclass(frozen=True)
class AuditView:
    id: int
    occurred_at: datetime
    actor: str
    action: str
    outcome: str
    reason: str | None
    target_id: str | None
    client_address: str | None
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "occurred_at": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "actor": self.actor,
            "action": self.action,
            "outcome": self.outcome,
            "reason": self.reason,
            "target_id": self.target_id,
            "client_address": self.client_address,
            "details": self.details,
        }


@dataclass(frozen=True)
class AuditFilter:
    """Which rows to show: each field, when given, must match exactly."""

    action: str | None = None
    outcome: str | None = None
    actor: str | None = None


def list_events(
    session: Session,
    workspace: Workspace,
    before_id: int | None = None,
    limit: int = 50,
    where: AuditFilter | None = None,
) -> list[AuditView]:
    """A workspace's audit rows, newest first; pass the last id seen as before_id for the next page."""
    query = select(AuditEvent).where(AuditEvent.workspace_id == workspace.id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if where is not None and where.action is not None:
        query = query.where(AuditEvent.action == where.action)
    if where is not None and where.outcome is not None:
        query = query.where(AuditEvent.outcome == where.outcome)
    if where is not None and where.actor is not None:
        query = query.where(AuditEvent.actor == where.actor)
    rows = session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit))
    return [
        AuditView(
            id=row.id,
            occurred_at=row.occurred_at,
            actor=row.actor,
            action=row.action,
            outcome=row.outcome,
            reason=row.reason,
            target_id=row.target_id,
            client_address=row.client_address,
            details=row.details,
        )
        for row in rows
    ]
