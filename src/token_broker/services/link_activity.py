"""Recent activity: link creations, destination (or slug) changes and deletions, newest first, each with the
credential that made it, the address it came from and the time; for admins to spot changes they did not expect, and
to see what a platform connection changed before disconnecting it.

Rows are written by services/links.py in the transaction of the change; reading them is for owners and admins.
Any key with `links:write` adds rows, so they are kept for a retention period only
(TOKEN_BROKER_ACTIVITY_RETENTION_DAYS, 90 by default): each server prunes older ones at start and every hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from token_broker import credentials
from token_broker.errors import InvalidInput, NotFound
from token_broker.services.actors import Actor
from token_broker.services.workspaces import authorize, find_workspace
from token_broker.store.activity_models import LinkActivity
from token_broker.store.database import Database
from token_broker.store.link_models import Link
from token_broker.store.models import Credential, utcnow
from token_broker.store.oauth_models import Connection
from token_broker.times import rfc3339

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
PRUNE_BATCH = 5000


def prune_activity(database: Database, older_than: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete activity that happened before `older_than`, in batches (each its own short write transaction, so that
    link writes are never held up for long); the number of rows deleted."""
    deleted = 0
    while True:
        with database.write() as session:
            ids = list(
                session.scalars(
                    select(LinkActivity.id)
                    .where(LinkActivity.occurred_at < older_than)
                    .order_by(LinkActivity.id)
                    .limit(batch)
                )
            )
            if ids:
                session.execute(delete(LinkActivity).where(LinkActivity.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < batch:
            return deleted


def record(
    session: Session,
    action: str,
    row: Link,
    credential_id: str | None,
    client_address: str | None,
    previous_destination: str | None = None,
) -> None:
    """One activity row in the caller's transaction. `row` is the link as it is after the change (before, for a
    deletion)."""
    session.add(
        LinkActivity(
            workspace_id=row.workspace_id,
            occurred_at=utcnow(),
            action=action,
            link_id=row.public_id,
            slug=row.slug,
            destination=row.destination,
            previous_destination=previous_destination,
            credential_id=credential_id,
            actor=row.created_by if credential_id is None else f"credential:{credential_id}",
            client_address=(client_address or None) and client_address[:64],
        )
    )


@dataclass(frozen=True)
class ActivityCredential:
    id: str
    name: str
    kind: str
    platform: str | None
    connection_id: str | None
    connection_status: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": "partner_install_token" if self.kind == "pat" else "workspace_key",
            "platform": self.platform,
            "connection_id": self.connection_id,
            "connection_status": self.connection_status,
        }


@dataclass(frozen=True)
class ActivityView:
    id: int
    occurred_at: datetime
    action: str
    link_id: str
    slug: str
    destination: str
    previous_destination: str | None
    actor: str
    credential: ActivityCredential | None
    client_address: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "occurred_at": rfc3339(self.occurred_at),
            "action": self.action,
            "link": {"id": self.link_id, "slug": self.slug, "destination": self.destination},
            "previous_destination": self.previous_destination,
            "actor": self.actor,
            "credential": None if self.credential is None else self.credential.to_json(),
            "client_address": self.client_address,
        }

    def to_contract_json(self) -> dict[str, Any]:
        """The admin JSON API's item: one link change, with the credential that made it (null for the dashboard)."""
        credential = self.credential
        return {
            "id": self.id,
            "type": self.action,
            "link_id": self.link_id,
            "credential": None
            if credential is None
            else {
                "id": credential.id,
                "name": credential.name,
                "kind": credential.to_json()["kind"],
                "platform": credential.platform,
            },
            "address": self.client_address,
            "created_at": rfc3339(self.occurred_at),
        }


@dataclass(frozen=True)
class ActivityPage:
    items: list[ActivityView]
    has_more: bool


def validate_query(credential: object, before: object, limit: object) -> tuple[str | None, int | None, int]:
    """The filter and page from query strings; InvalidInput naming the field."""
    if credential in (None, ""):
        credential = None
    elif not isinstance(credential, str) or not credentials.is_public_id(credential):
        raise InvalidInput("credential", "credential must be a key id (12 letters and digits) from the key list.")
    before_id = None
    if before not in (None, ""):
        if not isinstance(before, str) or not before.isdigit() or len(before) > 18:
            raise InvalidInput("before", "before must be the id of the last activity of the previous page.")
        before_id = int(before)
    size = DEFAULT_LIMIT
    if limit not in (None, ""):
        if not isinstance(limit, str) or not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            raise InvalidInput("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
        size = int(limit)
    return credential, before_id, size


def _check_credential_of(session: Session, workspace_id: int, credential_id: str) -> None:
    """A filter naming another workspace's credential (or none at all) is refused as not found, like any foreign id."""
    owned = select(Credential.id).where(Credential.public_id == credential_id, Credential.workspace_id == workspace_id)
    if session.scalar(owned.limit(1)) is None:
        raise NotFound(f"No credential {credential_id!r} in this workspace.")


def recent_activity(
    database: Database,
    actor: Actor,
    account_id: str,
    credential_id: str | None = None,
    before_id: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> ActivityPage:
    """The workspace's link activity, newest first; any role of the workspace may read it."""
    with database.read() as session:
        workspace = find_workspace(session, account_id)
        authorize(session, actor, workspace, manage=False)
        query = (
            select(LinkActivity, Credential, Connection.public_id, Connection.status)
            .outerjoin(
                Credential,
                (Credential.public_id == LinkActivity.credential_id) & (Credential.workspace_id == workspace.id),
            )
            .outerjoin(Connection, Connection.id == Credential.connection_id)
            .where(LinkActivity.workspace_id == workspace.id)
        )
        if credential_id is not None:
            _check_credential_of(session, workspace.id, credential_id)
            query = query.where(LinkActivity.credential_id == credential_id)
        if before_id is not None:
            query = query.where(LinkActivity.id < before_id)
        rows = list(session.execute(query.order_by(LinkActivity.id.desc()).limit(limit + 1)))
    items = []
    for activity, credential, connection_id, connection_status in rows[:limit]:
        used = None
        if credential is not None:
            used = ActivityCredential(
                id=credential.public_id,
                name=credential.name,
                kind=credential.kind,
                platform=credential.platform,
                connection_id=connection_id,
                connection_status=connection_status,
            )
        items.append(
            ActivityView(
                id=activity.id,
                occurred_at=activity.occurred_at,
                action=activity.action,
                link_id=activity.link_id,
                slug=activity.slug,
                destination=activity.destination,
                previous_destination=activity.previous_destination,
                actor=activity.actor,
                credential=used,
                client_address=activity.client_address,
            )
        )
    return ActivityPage(items=items, has_more=len(rows) > limit)
