"""A refresh grant in few statements: the common case (an active refresh token presented once, by its own client)
rotated with SQLAlchemy Core; everything else is left to services.tokens.refresh, whose rules stand unchanged.

The common case, in the grant's write transaction (after the client authenticated in it):
  1. one SELECT reads the token with its connection, the connection's partner install token and the workspace, and
     on PostgreSQL locks the connection's row (`FOR UPDATE OF connections`: lock order is the connection first,
     as everywhere; SQLite's BEGIN IMMEDIATE already serialises writers);
  2. `UPDATE refresh_tokens ... WHERE status = 'active' ... RETURNING id` claims the token: a concurrent refresh that
     rotated it first (committed while this one waited for the lock) leaves nothing to claim, and the request goes
     the general way, which answers it as a replay;
  3. one UPDATE rotates the partner install token (the old secret kept until its own expiry, computed in SQL from
     the row as it stands), one INSERT adds the successor, one the change note; the grant adds the audit row.
Anything else (a token rotated out, revoked, expired or of another client, a connection ended, a scope wider than
granted, a replay within or after the window) is left to services.tokens.refresh, in the same transaction. The
successor secrets are derived as there, so a retry within the replay window gets the same pair either way.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.orm import Session

from token_broker import credentials
from token_broker.credentials import CredentialKind
from token_broker.errors import MalformedCredential
from token_broker.services import tokens
from token_broker.services.clients import serves_workspace
from token_broker.services.connections import IssuedTokens
from token_broker.services.credential_changes import note_change
from token_broker.services.tokens import TokenLifetimes
from token_broker.store.database import table_of
from token_broker.store.models import Credential, Workspace, utcnow
from token_broker.store.oauth_models import Connection, OAuthClient, RefreshToken

# The statements are built once: building one per call (and its cache key) cost more than running it.
_tokens, _connections = table_of(RefreshToken), table_of(Connection)
_credentials, _workspaces = table_of(Credential), table_of(Workspace)
_READ = (
    select(
        _tokens.c.id,
        _tokens.c.token_hash,
        _tokens.c.status,
        _tokens.c.expires_at,
        _tokens.c.scope,
        _connections.c.id.label("connection_row_id"),
        _connections.c.public_id.label("connection_id"),
        _connections.c.status.label("connection_status"),
        _connections.c.client_id.label("client_row_id"),
        _connections.c.workspace_id,
        _connections.c.platform,
        _credentials.c.public_id.label("access_id"),
        _workspaces.c.account_id,
    )
    .join(_connections, _connections.c.id == _tokens.c.connection_id)
    .join(_credentials, _credentials.c.connection_id == _connections.c.id)
    .join(_workspaces, _workspaces.c.id == _connections.c.workspace_id)
    .where(_tokens.c.public_id == bindparam("p_public_id"))
    .with_for_update(of=_connections)
)
_CLAIM = (
    update(_tokens)
    .where(
        _tokens.c.id == bindparam("p_token"),
        _tokens.c.status == "active",
        _tokens.c.expires_at > bindparam("p_now"),
    )
    .values(status="rotated", rotated_at=bindparam("p_now"), successor_id=bindparam("p_successor"))
    .returning(_tokens.c.id)
)
_keep_old = _credentials.c.expires_at > bindparam("p_now")  # the old access token lives out its time
_ROTATE_ACCESS = (
    update(_credentials)
    .where(_credentials.c.public_id == bindparam("p_access_id"))
    .values(
        previous_secret_hash=case((_keep_old, _credentials.c.secret_hash), else_=None),
        previous_valid_until=case((_keep_old, _credentials.c.expires_at), else_=None),
        secret_hash=bindparam("p_secret_hash"),
        expires_at=bindparam("p_expires_at"),
        scopes=bindparam("p_scopes"),
        hint=bindparam("p_hint"),
        rotated_at=bindparam("p_now"),
        version=_credentials.c.version + 1,
    )
)
_ADD_SUCCESSOR = insert(_tokens)


@dataclass(frozen=True)
class Rotated:
    """A refresh token rotated the common way, and what its audit row names: the connection and its workspace."""

    tokens: IssuedTokens
    workspace_id: int
    platform: str


def rotate_active(
    session: Session, client: OAuthClient, presented: str, requested_scope: str | None, lifetimes: TokenLifetimes
) -> Rotated | None:
    """The common case, rotated in the caller's transaction (the caller writes its audit row); None, with nothing
    written, when the request is anything else: services.tokens.refresh decides it."""
    try:
        parsed = credentials.parse(presented)
    except MalformedCredential:
        return None
    if parsed.kind is not CredentialKind.PARTNER_REFRESH:
        return None
    now = utcnow()
    connection = session.connection()
    found = connection.execute(_READ, {"p_public_id": parsed.public_id}).one_or_none()
    if (
        found is None
        or not hmac.compare_digest(found.token_hash, credentials.fast_hash(presented))
        or found.client_row_id != client.id
        or not serves_workspace(client, found.workspace_id)
        or found.connection_status != "active"
        or found.status != "active"
        or found.expires_at <= now
    ):
        return None
    granted = found.scope.split()
    scopes = granted if requested_scope is None else requested_scope.split()
    if not set(scopes) <= set(granted):
        return None
    successor_id = credentials.new_public_id()
    claim = {"p_token": found.id, "p_now": now, "p_successor": successor_id}
    if connection.execute(_CLAIM, claim).one_or_none() is None:
        return None  # rotated by a concurrent refresh that committed while this one waited: a replay
    access, new_refresh = tokens.successor_pair(parsed, found.access_id, successor_id, lifetimes)
    access_seconds = lifetimes.access_seconds[client.platform]
    connection.execute(
        _ROTATE_ACCESS,
        {
            "p_access_id": found.access_id,
            "p_now": now,
            "p_secret_hash": credentials.fast_hash(access.plaintext),
            "p_expires_at": now + timedelta(seconds=access_seconds),
            "p_scopes": list(scopes),
            "p_hint": credentials.hint(access),
        },
    )
    connection.execute(
        _ADD_SUCCESSOR,
        {
            "public_id": successor_id,
            "connection_id": found.connection_row_id,
            "token_hash": credentials.fast_hash(new_refresh.plaintext),
            "scope": found.scope,
            "status": "active",
            "created_at": now,
            "expires_at": now + lifetimes.refresh,
        },
    )
    note_change(session, found.access_id)
    issued = IssuedTokens(
        access_token=access.plaintext,
        refresh_token=new_refresh.plaintext,
        expires_in=access_seconds,
        scope=" ".join(scopes),
        account_id=found.account_id,
        connection_id=found.connection_id,
    )
    return Rotated(issued, found.workspace_id, found.platform)
