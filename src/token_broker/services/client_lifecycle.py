"""An OAuth client's life after registration: listed, its secret rotated (the old one lasting a grace window, like a
key's), and revoked, which ends every connection it holds the way a disconnect does.

Who may act: the operator on any client; an owner or admin of the registering workspace on that workspace's own (n8n)
clients. A platform-wide client (Zapier, Make) or another workspace's client is not found for anyone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from token_broker import credentials, policy
from token_broker.errors import Conflict, NotFound
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, record, run_audited
from token_broker.services.client_rows import ClientRow
from token_broker.services.clients import CLIENT_SECRET_LENGTH
from token_broker.services.connections import end_connection, lock_connection
from token_broker.services.credential_changes import note_client_change
from token_broker.services.workspaces import authorize, find_workspace, workspace_to_manage
from token_broker.store.database import Database
from token_broker.store.models import Credential, Workspace, utcnow
from token_broker.store.oauth_models import Connection, OAuthClient
from token_broker.times import rfc3339

REVOKED_REASON = "client_revoked"


@dataclass(frozen=True)
class ClientView:
    """A client as `client list` shows it; never its secret."""

    client_id: str
    platform: str
    workspace: str | None
    redirect_uris: tuple[str, ...]
    status: str
    created_at: datetime
    created_by: str
    grace_until: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: OAuthClient, account_id: str | None, now: datetime) -> ClientView:
        valid_until = row.previous_valid_until
        return cls(
            client_id=row.client_id,
            platform=row.platform,
            workspace=account_id,
            redirect_uris=tuple(row.redirect_uris),
            status="revoked" if row.revoked_at is not None else "active",
            created_at=row.created_at,
            created_by=row.created_by,
            grace_until=valid_until if valid_until is not None and valid_until > now else None,
            revoked_at=row.revoked_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "platform": self.platform,
            "workspace": self.workspace,
            "redirect_uris": list(self.redirect_uris),
            "status": self.status,
            "created_at": rfc3339(self.created_at),
            "created_by": self.created_by,
            "grace_until": rfc3339(self.grace_until),
            "revoked_at": rfc3339(self.revoked_at),
        }


@dataclass(frozen=True)
class RevokedClient:
    client_id: str
    connections_ended: int
    ended_credentials: tuple[str, ...]  # the partner install tokens that died, for the caller's verification cache

    def to_json(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "status": "revoked", "connections_ended": self.connections_ended}


@dataclass(frozen=True)
class RotatedSecret:
    client_id: str
    client_secret: str
    grace_until: datetime | None

    def __repr__(self) -> str:
        return f"RotatedSecret(client_id={self.client_id!r}, grace_until={self.grace_until!r})"

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "grace_until": rfc3339(self.grace_until),
        }


def list_clients(database: Database, actor: Actor, account_id: str | None = None) -> list[ClientView]:
    """Clients, newest first, revoked ones too. With account_id: that workspace's own clients (any role may look);
    without: every client (the operator only)."""
    with database.read() as session:
        query = select(OAuthClient, Workspace.account_id).outerjoin(Workspace, Workspace.id == OAuthClient.workspace_id)
        if account_id is not None:
            workspace = find_workspace(session, account_id)
            authorize(session, actor, workspace, manage=False)
            query = query.where(OAuthClient.workspace_id == workspace.id)
        elif not actor.is_operator:
            raise NotFound("Name the workspace whose clients to list.")
        rows = session.execute(query.order_by(OAuthClient.created_at.desc(), OAuthClient.id.desc())).all()
        now = utcnow()
        return [ClientView.of(row, owner, now) for row, owner in rows]


def _locked_client(
    session: Session, actor: Actor, entry: AuditEntry, client_id: str, account_id: str | None
) -> OAuthClient:
    """The client's row, locked; NotFound unless the actor may manage it (through account_id, if given)."""
    entry.target_id = client_id[:64]
    not_found = NotFound(f"No client {client_id!r} is visible to you.")
    row = session.scalar(
        select(OAuthClient)
        .where(OAuthClient.client_id == client_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise not_found
    if row.workspace_id is None:
        if account_id is not None or not actor.is_operator:
            raise not_found  # a platform-wide client is the operator's alone
        return row
    workspace_to_manage(session, actor, entry, row.workspace_id, account_id, not_found)
    return row


def revoke_client(database: Database, actor: Actor, client_id: str, account_id: str | None = None) -> RevokedClient:
    """Revoke a client: it can no longer authorize or reach the token endpoint, and each of its connections ends as
    a disconnect ends one (tokens dead, hooks disabled, deliveries cancelled, a notice), all in one transaction."""

    def work(session: Session, entry: AuditEntry) -> RevokedClient:
        row = _locked_client(session, actor, entry, client_id, account_id)
        if row.revoked_at is not None:
            raise Conflict(f"Client {client_id} is already revoked.")
        now = utcnow()
        row.revoked_at = now
        row.revoked_by = actor.label
        row.previous_secret_hash = None
        row.previous_valid_until = None
        note_client_change(session, row.client_id)
        ended: list[str] = []
        active = session.scalars(
            select(Connection.id)
            .where(Connection.client_id == row.id, Connection.status == "active")
            .order_by(Connection.id)
        ).all()
        for connection_id in active:
            connection = lock_connection(session, connection_id)
            if connection.status != "active":
                continue
            end_connection(session, connection, actor.label, REVOKED_REASON, now)
            token = session.scalar(select(Credential.public_id).where(Credential.connection_id == connection.id))
            ended += [token] if token is not None else []
            _record_ended(session, actor, row, connection)
        entry.details = {"platform": row.platform, "connections_ended": len(active)}
        return RevokedClient(client_id=row.client_id, connections_ended=len(active), ended_credentials=tuple(ended))

    return run_audited(database, actor, "client.revoked", work)


def _record_ended(session: Session, actor: Actor, client: OAuthClient, connection: Connection) -> None:
    """Each ended connection in its own workspace's audit, as a disconnect would be."""
    entry = AuditEntry(
        action="connection.disconnected",
        workspace_id=connection.workspace_id,
        target_id=connection.public_id,
        details={"platform": connection.platform, "reason": REVOKED_REASON, "client_id": client.client_id},
    )
    record(session, actor, entry, "ok", None)


def rotate_client_secret(
    database: Database, actor: Actor, client_id: str, grace_seconds: object = None, account_id: str | None = None
) -> RotatedSecret:
    """A new secret, shown once; connections stay. The old secret keeps working until the grace window ends (default
    24 h, 0 allowed, at most 7 days). Only one earlier secret is kept: rotating again ends the older one's grace."""
    secret = credentials.random_base62(CLIENT_SECRET_LENGTH)

    def work(session: Session, entry: AuditEntry) -> RotatedSecret:
        row = _locked_client(session, actor, entry, client_id, account_id)
        grace = policy.validate_grace(grace_seconds)
        if row.revoked_at is not None:
            raise Conflict(f"Client {client_id} is revoked; a revoked client cannot be given a new secret.")
        now = utcnow()
        row.previous_secret_hash = row.secret_hash if grace > 0 else None
        row.previous_valid_until = now + timedelta(seconds=grace) if grace > 0 else None
        row.secret_hash = credentials.fast_hash(secret)
        row.rotated_at = now
        note_client_change(session, row.client_id)
        entry.details = {
            "platform": row.platform,
            "grace_seconds": grace,
            "grace_until": rfc3339(row.previous_valid_until),
        }
        return RotatedSecret(client_id=row.client_id, client_secret=secret, grace_until=row.previous_valid_until)

    return run_audited(database, actor, "client.secret_rotated", work)


def hold_active(session: Session, client: ClientRow) -> bool:
    """Whether the client is still active, holding a shared lock on its row until the transaction ends, so that a
    revocation either waits for a token exchange or is seen by it: no connection outlives its client's revocation."""
    revoked_at = session.scalar(
        select(OAuthClient.revoked_at)
        .where(OAuthClient.id == client.id)
        .with_for_update(read=True)
        .execution_options(populate_existing=True)
    )
    return revoked_at is None
