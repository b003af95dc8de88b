"""The event outbox: every change that partners may hear about writes one event in the transaction of the change,
so that an event exists exactly when its change committed. Webhook deliveries are made from these rows later.

Every payload has one shape: ``{"id", "type", "created_at", "account_id", "data"}``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from token_broker import credentials
from token_broker.services.workspaces import new_public_id
from token_broker.store.link_models import EVENT_TYPES, OutboxEvent
from token_broker.store.models import Workspace, utcnow
from token_broker.times import rfc3339

EVENT_ID_PREFIX = "evt_"


def add_event(
    session: Session,
    workspace: Workspace,
    type: str,
    data: dict[str, Any],
    source_credential_id: str | None = None,
) -> OutboxEvent:
    """Add an event to the session's transaction; it commits or rolls back with the change it announces.

    `source_credential_id` is the public id of the credential whose request caused the event, when one did, so that
    deliveries can tell a partner which events its own calls caused.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    if source_credential_id is not None and not credentials.is_public_id(source_credential_id):
        raise ValueError("source_credential_id must be a credential's 12-character public id")
    now = utcnow()
    public_id = new_public_id(EVENT_ID_PREFIX)
    event = OutboxEvent(
        public_id=public_id,
        workspace_id=workspace.id,
        type=type,
        payload={
            "id": public_id,
            "type": type,
            "created_at": rfc3339(now),
            "account_id": workspace.account_id,
            "data": data,
        },
        created_at=now,
        source_credential_id=source_credential_id,
    )
    session.add(event)
    return event
