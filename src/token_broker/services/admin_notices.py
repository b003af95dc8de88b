"""What a workspace's admins are told about its credentials and connections: `integration.disconnected`,
`credential.revoked`, `credential.rotated`, `credential.expiring` and `credential.leaked`. Each is an outbox event
written in the transaction of its change, so the dashboard lists it and any admin hook of the workspace receives
it. Only workspace API keys may subscribe to them: a platform never hears about the workspace's other credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from token_broker.services.outbox import add_event
from token_broker.services.workspaces import find_workspace
from token_broker.store.database import Database
from token_broker.store.link_models import ADMIN_EVENT_TYPES, OutboxEvent
from token_broker.store.models import Credential, Workspace
from token_broker.store.oauth_models import Connection
from token_broker.times import rfc3339

EXPIRING_WITHIN = timedelta(days=3)


def credential_changed(session: Session, workspace: Workspace, event: str, credential: dict[str, Any]) -> None:
    """credential.revoked or credential.rotated, with the credential as lists show it (no secret material)."""
    add_event(session, workspace, event, {"credential": credential})


def add_leaked(session: Session, workspace: Workspace, payload: dict[str, Any]) -> None:
    """credential.leaked: a secret scanner found one of the workspace's live credentials in public, with what was
    done about it (`response`: revoked, disconnected, grace_ended or notified) and where it was found."""
    add_event(session, workspace, "credential.leaked", payload)


def connection_ended(session: Session, connection: Connection) -> None:
    workspace = session.get_one(Workspace, connection.workspace_id)
    add_event(
        session,
        workspace,
        "integration.disconnected",
        {
            "connection": {
                "id": connection.public_id,
                "platform": connection.platform,
                "reason": connection.disconnect_reason,
                "disconnected_by": connection.disconnected_by,
                "disconnected_at": rfc3339(connection.disconnected_at),
            }
        },
    )


def record_expiring(database: Database, now: datetime) -> int:
    """Tell admins, once per key, that an active workspace key expires within three days; returns how many."""
    told = 0
    with database.write() as session:
        due = session.scalars(
            select(Credential).where(
                Credential.kind == "key",
                Credential.status == "active",
                Credential.expiring_notified_at.is_(None),
                Credential.expires_at > now,
                Credential.expires_at <= now + EXPIRING_WITHIN,
            )
        ).all()
        for credential in due:
            # the conditional update makes two instances running this at once tell each key once
            marked = session.execute(
                update(Credential)
                .where(Credential.id == credential.id, Credential.expiring_notified_at.is_(None))
                .values(expiring_notified_at=now)
            )
            if marked.rowcount != 1:  # type: ignore[attr-defined]
                continue
            workspace = session.get_one(Workspace, credential.workspace_id)
            add_event(session, workspace, "credential.expiring", {"credential": {
                "id": credential.public_id, "name": credential.name, "expires_at": rfc3339(credential.expires_at),
            }})  # fmt: skip
            told += 1
    return told


@dataclass(frozen=True)
class Notice:
    id: str
    type: str
    created_at: datetime
    data: dict[str, Any]


def recent_notices(database: Database, account_id: str, limit: int = 20) -> list[Notice]:
    """The workspace's latest admin events, newest first, for the dashboard."""
    with database.read() as session:
        workspace = find_workspace(session, account_id)
        rows = session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.workspace_id == workspace.id, OutboxEvent.type.in_(ADMIN_EVENT_TYPES))
            .order_by(OutboxEvent.id.desc())
            .limit(limit)
        )
        return [Notice(row.public_id, row.type, row.created_at, row.payload.get("data", {})) for row in rows]
