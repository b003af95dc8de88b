"""Connections: what one completed connect flow made (a partner install token and its refresh-token family), listed,
and ended at once by a disconnect, a revocation or a rotation of its token.

Lock order, everywhere: the connection's row first, then its credential and refresh-token rows. Refresh, revoke and
disconnect can race; taking locks in one order keeps PostgreSQL from deadlocking them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from token_broker import credentials
from token_broker.credentials import CredentialKind
from token_broker.errors import Conflict, NotFound
from token_broker.policy import DEFAULT_RATE_LIMITS
from token_broker.services import admin_notices, webhook_subscriptions
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, run_audited
from token_broker.services.client_rows import ClientRow
from token_broker.services.credential_revocation import revoke_credential
from token_broker.services.workspaces import authorize, find_workspace, new_public_id, workspace_to_manage
from token_broker.store.database import Database
from token_broker.store.models import Credential, Workspace, utcnow
from token_broker.store.oauth_models import Connection, OAuthClient, RefreshToken
from token_broker.times import rfc3339

PLATFORM_NAMES = {"zapier": "Zapier", "make": "Make", "n8n": "n8n"}
CONNECTION_ID_PREFIX = "con_"


@dataclass(frozen=True)
class IssuedTokens:
    """A token response's contents. The plaintexts are shown to the platform once and never stored."""

    access_token: str
    refresh_token: str
    expires_in: int
    scope: str
    account_id: str
    connection_id: str

    def __repr__(self) -> str:
        return f"IssuedTokens(connection_id={self.connection_id!r}, scope={self.scope!r})"

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
            "account_id": self.account_id,
        }


def open_connection(
    session: Session,
    client: ClientRow,
    workspace: Workspace,
    approved_by: str,
    scopes: Sequence[str],
    access_seconds: int,
    refresh_lifetime: timedelta,
) -> IssuedTokens:
    """A new connection with its partner install token and first refresh token, in the caller's transaction."""
    now = utcnow()
    connection = Connection(
        public_id=new_public_id(CONNECTION_ID_PREFIX),
        workspace_id=workspace.id,
        client_id=client.id,
        platform=client.platform,
        scopes=list(scopes),
        approved_by=approved_by,
        created_at=now,
        status="active",
    )
    session.add(connection)
    session.flush()
    access = credentials.generate(CredentialKind.PARTNER_ACCESS)
    session.add(
        Credential(
            public_id=access.public_id,
            workspace_id=workspace.id,
            kind=CredentialKind.PARTNER_ACCESS.value,
            platform=client.platform,
            name=f"{PLATFORM_NAMES[client.platform]} connection",
            secret_hash=credentials.fast_hash(access.plaintext),
            status="active",
            scopes=list(scopes),
            allowed_ips=[],
            rate_limits=[str(limit) for limit in DEFAULT_RATE_LIMITS],
            expires_at=now + timedelta(seconds=access_seconds),
            hint=credentials.hint(access),
            created_at=now,
            created_by=approved_by,
            version=1,
            connection_id=connection.id,
        )
    )
    refresh = credentials.generate(CredentialKind.PARTNER_REFRESH)
    session.add(
        RefreshToken(
            public_id=refresh.public_id,
            connection_id=connection.id,
            token_hash=credentials.fast_hash(refresh.plaintext),
            scope=" ".join(scopes),
            status="active",
            created_at=now,
            expires_at=now + refresh_lifetime,
        )
    )
    return IssuedTokens(
        access_token=access.plaintext,
        refresh_token=refresh.plaintext,
        expires_in=access_seconds,
        scope=" ".join(scopes),
        account_id=workspace.account_id,
        connection_id=connection.public_id,
    )


def end_connection(session: Session, connection: Connection, by: str, reason: str, now: datetime) -> None:
    """Disconnect: the partner install token and every refresh token die, its hooks are disabled and their queued
    deliveries cancelled; all in the caller's transaction.

    The caller holds the connection's row lock (or just created it)."""
    connection.status = "disconnected"
    connection.disconnected_at = now
    connection.disconnected_by = by
    connection.disconnect_reason = reason
    tokens = session.scalars(
        select(Credential).where(Credential.connection_id == connection.id).with_for_update()
    ).all()
    for token in tokens:
        revoke_credential(session, token, by, now)
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.connection_id == connection.id, RefreshToken.status != "revoked")
        .values(status="revoked", revoked_at=now, rotated_at=None)
    )
    webhook_subscriptions.disable_hooks_for_connection(session, connection.id, now)
    admin_notices.connection_ended(session, connection)


def lock_connection(session: Session, connection_id: int) -> Connection:
    return session.scalars(select(Connection).where(Connection.id == connection_id).with_for_update()).one()


@dataclass(frozen=True)
class ConnectionView:
    id: str
    platform: str
    client_id: str
    status: str
    scopes: tuple[str, ...]
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    credential_id: str | None
    disconnected_at: datetime | None
    disconnected_by: str | None
    disconnect_reason: str | None

    @classmethod
    def of(
        cls, connection: Connection, client_id: str, credential_id: str | None, last_used_at: datetime | None
    ) -> ConnectionView:
        """The view of a connection's row, with its client's id and its partner install token's id and last use."""
        return cls(
            id=connection.public_id,
            platform=connection.platform,
            client_id=client_id,
            status=connection.status,
            scopes=tuple(connection.scopes),
            created_at=connection.created_at,
            created_by=connection.approved_by,
            last_used_at=last_used_at,
            credential_id=credential_id,
            disconnected_at=connection.disconnected_at,
            disconnected_by=connection.disconnected_by,
            disconnect_reason=connection.disconnect_reason,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "platform": self.platform,
            "client_id": self.client_id,
            "status": self.status,
            "scopes": list(self.scopes),
            "created_at": rfc3339(self.created_at),
            "created_by": self.created_by,
            "last_used_at": rfc3339(self.last_used_at),
            "credential_id": self.credential_id,
            "disconnected_at": rfc3339(self.disconnected_at),
            "disconnected_by": self.disconnected_by,
            "disconnect_reason": self.disconnect_reason,
        }


def list_connections(database: Database, actor: Actor, account_id: str) -> list[ConnectionView]:
    """A workspace's connections, newest first; any role may list."""
    with database.read() as session:
        workspace = find_workspace(session, account_id)
        authorize(session, actor, workspace, manage=False)
        rows = session.execute(
            select(Connection, OAuthClient.client_id, Credential.public_id, Credential.last_used_at)
            .join(OAuthClient, OAuthClient.id == Connection.client_id)
            .outerjoin(Credential, Credential.connection_id == Connection.id)
            .where(Connection.workspace_id == workspace.id)
            .order_by(Connection.created_at.desc(), Connection.id.desc())
        )
        return [
            ConnectionView.of(connection, client_id, credential_id, last_used)
            for connection, client_id, credential_id, last_used in rows
        ]


def disconnect(database: Database, actor: Actor, connection_id: str, account_id: str | None = None) -> ConnectionView:
    """An admin cuts a platform off: everything of the connection dies in one transaction, with its audit row."""

    def work(session: Session, entry: AuditEntry) -> ConnectionView:
        entry.target_id = connection_id[:64]
        not_found = NotFound(f"No connection {connection_id!r} is visible to you.")
        found = session.scalar(select(Connection.id).where(Connection.public_id == connection_id))
        if found is None:
            raise not_found
        connection = lock_connection(session, found)
        workspace_to_manage(session, actor, entry, connection.workspace_id, account_id, not_found)
        if connection.status != "active":
            raise Conflict(f"Connection {connection_id} is already disconnected.")
        end_connection(session, connection, actor.label, "disconnected", utcnow())
        entry.details = {"platform": connection.platform}
        return _view(session, connection)

    return run_audited(database, actor, "connection.disconnected", work)


def _view(session: Session, connection: Connection) -> ConnectionView:
    client = session.get_one(OAuthClient, connection.client_id)
    token = session.scalar(select(Credential).where(Credential.connection_id == connection.id))
    if token is None:
        return ConnectionView.of(connection, client.client_id, None, None)
    return ConnectionView.of(connection, client.client_id, token.public_id, token.last_used_at)
