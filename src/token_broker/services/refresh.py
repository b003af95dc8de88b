"""A refresh grant in few statements: the common case (an active refresh token presented once, by its own client)
rotated with fixed SQL on the DB-API cursor of the grant's transaction (store.raw_statements: one text for both
stores, compiled per dialect); everything else is left to services.tokens.refresh, whose rules stand unchanged.

The common case, in the grant's write transaction (after the client authenticated in it):
  1. one SELECT reads the token with its connection, the connection's partner install token and the workspace, and
     on PostgreSQL locks the connection's row (`FOR UPDATE OF c`: lock order is the connection first, as
     everywhere; SQLite's BEGIN IMMEDIATE already serialises writers);
  2. `UPDATE refresh_tokens ... WHERE status = 'active' AND expires_at > now` claims the token: a concurrent refresh
     that rotated it first (committed while this one waited for the lock) leaves nothing to claim, and the request
     goes the general way, which answers it as a replay;
  3. one UPDATE rotates the partner install token (the old secret kept until its own expiry, decided in SQL from
     the row as it stands), one INSERT adds the successor, one the change note (on PostgreSQL it also NOTIFYs, in
     the same statement); the grant adds the audit row.
Anything else (a token rotated out, revoked, expired or of another client, a connection ended, a scope wider than
granted, a replay within or after the window) is left to services.tokens.refresh, in the same transaction. The
successor secrets are derived as there, so a retry within the replay window gets the same pair either way.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import JSON
from sqlalchemy.orm import Session

from token_broker import credentials
from token_broker.credentials import CredentialKind
from token_broker.errors import MalformedCredential
from token_broker.services import tokens
from token_broker.services.client_rows import ClientRow
from token_broker.services.clients import serves_workspace
from token_broker.services.connections import IssuedTokens
from token_broker.services.tokens import TokenLifetimes
from token_broker.store.database import changed_credential
from token_broker.store.lean_write import LeanWrite
from token_broker.store.models import UTCDateTime, utcnow
from token_broker.store.raw_statements import RawCursor, RawStatement

_WHEN = UTCDateTime()
_READ = RawStatement(
    """
    SELECT rt.id, rt.token_hash, rt.status, rt.expires_at > :now, rt.scope,
           c.id, c.public_id, c.status, c.client_id, c.workspace_id, c.platform, cr.public_id, w.account_id
    FROM refresh_tokens rt
    JOIN connections c ON c.id = rt.connection_id
    JOIN credentials cr ON cr.connection_id = c.id
    JOIN workspaces w ON w.id = c.workspace_id
    WHERE rt.public_id = :public_id
    """,
    {"now": _WHEN},
    suffixes={"postgresql": " FOR UPDATE OF c"},
)
_CLAIM = RawStatement(
    """
    UPDATE refresh_tokens SET status = 'rotated', rotated_at = :now, successor_id = :successor
    WHERE id = :token AND status = 'active' AND expires_at > :now
    """,
    {"now": _WHEN},
)
# The old access token lives out its time: its secret stays the previous one until its own expiry, if still ahead.
_ROTATE_ACCESS = RawStatement(
    """
    UPDATE credentials SET
        previous_secret_hash = CASE WHEN expires_at > :now THEN secret_hash ELSE NULL END,
        previous_valid_until = CASE WHEN expires_at > :now THEN expires_at ELSE NULL END,
        secret_hash = :secret_hash, expires_at = :expires_at, scopes = :scopes, hint = :hint, rotated_at = :now,
        version = version + 1
    WHERE public_id = :access_id
    """,
    {"now": _WHEN, "expires_at": _WHEN, "scopes": JSON()},
)
_ADD_SUCCESSOR = RawStatement(
    """
    INSERT INTO refresh_tokens (public_id, connection_id, token_hash, scope, status, created_at, expires_at)
    VALUES (:public_id, :connection_id, :token_hash, :scope, 'active', :now, :expires_at)
    """,
    {"now": _WHEN, "expires_at": _WHEN},
)
# services.credential_changes.note_change, in one statement (on PostgreSQL a trigger sends its NOTIFY, migration 0011).
_NOTE = RawStatement(
    "INSERT INTO credential_changes (credential_id, changed_at) VALUES (:credential_id, :now)",
    {"now": _WHEN},
)


@dataclass(frozen=True)
class Rotated:
    """A refresh token rotated the common way, and what its audit row names: the connection and its workspace."""

    tokens: IssuedTokens
    workspace_id: int
    platform: str


def rotate_active(
    session: Session | LeanWrite,
    client: ClientRow,
    presented: str,
    requested_scope: str | None,
    lifetimes: TokenLifetimes,
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
    cursor = RawCursor(session)
    try:
        return _rotate(cursor, session, client, parsed, requested_scope, lifetimes, now)
    finally:
        cursor.close()


def _rotate(
    cursor: RawCursor,
    session: Session | LeanWrite,
    client: ClientRow,
    parsed: credentials.ParsedCredential,
    requested_scope: str | None,
    lifetimes: TokenLifetimes,
    now: datetime,
) -> Rotated | None:
    found = cursor.one_or_none(_READ, {"public_id": parsed.public_id, "now": now})
    if found is None:
        return None
    (token_row_id, token_hash, status, live, granted_scope, connection_row_id, connection_id, connection_status,
     client_row_id, workspace_id, platform, access_id, account_id) = found  # fmt: skip
    if (
        not hmac.compare_digest(token_hash, credentials.fast_hash(parsed.plaintext))
        or client_row_id != client.id
        or not serves_workspace(client, workspace_id)
        or connection_status != "active"
        or status != "active"
        or not live
    ):
        return None
    granted = granted_scope.split()
    scopes = granted if requested_scope is None else requested_scope.split()
    if not set(scopes) <= set(granted):
        return None
    successor_id = credentials.new_public_id()
    if cursor.execute(_CLAIM, {"token": token_row_id, "now": now, "successor": successor_id}) != 1:
        return None  # rotated by a concurrent refresh that committed while this one waited: a replay
    access, new_refresh = tokens.successor_pair(parsed, access_id, successor_id, lifetimes)
    access_seconds = lifetimes.access_seconds[client.platform]
    cursor.execute(
        _ROTATE_ACCESS,
        {
            "access_id": access_id,
            "now": now,
            "secret_hash": credentials.fast_hash(access.plaintext),
            "expires_at": now + timedelta(seconds=access_seconds),
            "scopes": list(scopes),
            "hint": credentials.hint(access),
        },
    )
    cursor.execute(
        _ADD_SUCCESSOR,
        {
            "public_id": successor_id,
            "connection_id": connection_row_id,
            "token_hash": credentials.fast_hash(new_refresh.plaintext),
            "scope": granted_scope,
            "now": now,
            "expires_at": now + lifetimes.refresh,
        },
    )
    cursor.execute(_NOTE, {"credential_id": access_id, "now": now})
    changed_credential(session, access_id)  # this instance hears it at commit, before the answer leaves
    issued = IssuedTokens(
        access_token=access.plaintext,
        refresh_token=new_refresh.plaintext,
        expires_in=access_seconds,
        scope=" ".join(scopes),
        account_id=account_id,
        connection_id=connection_id,
    )
    return Rotated(issued, workspace_id, platform)
