"""The token endpoint's rules: authorization codes, refresh-token rotation, introspection and revocation.

Every function works in the caller's session: a token request runs in one write transaction, so a code is consumed,
its connection opened and the audit row written together, and a refresh rotates its family atomically.

Refresh tokens rotate on every use. The one just rotated out may be presented again for REFRESH_REPLAY_SECONDS and
gets the same successor pair: platforms retry a refresh whose answer was lost and run refreshes concurrently (n8n
single-flights per credential with a 10 s lock, Zapier retries), and neither must disconnect a healthy connection.
The successor secrets are derived as HMAC(server key, presented refresh token), so they can be given again without
storing them; only a holder of the presented token can receive them. Presented after the window, a rotated-out
token is taken for a stolen copy and ends the whole family (RFC 9700 section 4.14.2).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from token_broker import credentials
from token_broker.credentials import CredentialKind
from token_broker.errors import BrokerError, InvalidGrant, InvalidScope, MalformedCredential
from token_broker.services.client_rows import ClientRow
from token_broker.services.clients import serves_workspace
from token_broker.services.connections import IssuedTokens, end_connection, lock_connection, open_connection
from token_broker.services.credential_changes import note_change
from token_broker.store.models import Credential, Workspace, utcnow
from token_broker.store.oauth_models import AuthorizationCode, Connection, OAuthClient, RefreshToken

CODE_SECONDS = 60
REFRESH_REPLAY_SECONDS = 30


@dataclass(frozen=True)
class TokenLifetimes:
    access_seconds: dict[str, int]
    refresh: timedelta
    successor_key: bytes

    @classmethod
    def of(cls, access_seconds: dict[str, int], refresh_days: int, secret_key: str) -> TokenLifetimes:
        key = hmac.new(secret_key.encode(), b"token-broker refresh successors", hashlib.sha256).digest()
        return cls(access_seconds=access_seconds, refresh=timedelta(days=refresh_days), successor_key=key)


def code_hash(code: str) -> str:
    return credentials.fast_hash(code)


def issue_code(
    session: Session,
    code: str,
    client: ClientRow,
    workspace_id: int,
    user_id: int,
    redirect_uri: str | None,
    scope: str,
    code_challenge: str | None,
    code_challenge_method: str | None,
) -> None:
    now = utcnow()
    session.add(
        AuthorizationCode(
            code_hash=code_hash(code),
            client_id=client.id,
            workspace_id=workspace_id,
            user_id=user_id,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            created_at=now,
            expires_at=now + timedelta(seconds=CODE_SECONDS),
        )
    )


@dataclass(frozen=True)
class CodeReplay:
    """A code presented again after its redemption: the connection that redemption opened, and whether this ended it."""

    connection: Connection
    ended: bool


def consume_code(session: Session, client: ClientRow, code: str) -> AuthorizationCode | CodeReplay | None:
    """The code's row if this client may redeem it now, marking it used in the same statement; None otherwise.

    A code presented again after its first redemption ends the connection that redemption opened (RFC 6749 4.1.2),
    and is answered as a CodeReplay so that the caller can audit it."""
    now = utcnow()
    hashed = code_hash(code)
    redeemable = [
        AuthorizationCode.code_hash == hashed,
        AuthorizationCode.client_id == client.id,
        AuthorizationCode.used_at.is_(None),
        AuthorizationCode.expires_at > now,
    ]
    if client.workspace_id is not None:  # a workspace's own client: codes for that workspace only, however made
        redeemable.append(AuthorizationCode.workspace_id == client.workspace_id)
    claimed = session.execute(update(AuthorizationCode).where(*redeemable).values(used_at=now))
    row = session.scalar(select(AuthorizationCode).where(AuthorizationCode.code_hash == hashed))
    if claimed.rowcount == 1:  # type: ignore[attr-defined]
        return row
    if row is not None and row.client_id == client.id and row.used_at is not None and row.connection_id is not None:
        connection = lock_connection(session, row.connection_id)
        active = connection.status == "active"
        if active:
            end_connection(session, connection, f"client:{client.client_id}", "code_replayed", now)
        return CodeReplay(connection, ended=active)
    return None


def redeem(
    session: Session, client: ClientRow, code: AuthorizationCode, approved_by: str, lifetimes: TokenLifetimes
) -> IssuedTokens:
    workspace = session.get_one(Workspace, code.workspace_id)
    issued = open_connection(
        session,
        client,
        workspace,
        approved_by,
        code.scope.split(),
        lifetimes.access_seconds[client.platform],
        lifetimes.refresh,
    )
    code.connection_id = session.scalar(select(Connection.id).where(Connection.public_id == issued.connection_id))
    return issued


@dataclass(frozen=True)
class Refused:
    """A refusal whose side effects (ending a family) must still commit. `connection` is set once the presented token
    was found to be this client's, so the refusal can be audited in its workspace; `replay` when the token had already
    been rotated out, and `ended` when that ended the connection (reuse after the replay window)."""

    error: BrokerError
    connection: Connection | None = None
    replay: bool = False
    ended: bool = False


@dataclass(frozen=True)
class Refreshed:
    """A successful refresh; `replay` when it answered a rotated-out token again within the replay window."""

    tokens: IssuedTokens
    connection: Connection
    replay: bool = False


def refresh(
    session: Session, client: ClientRow, presented: str, requested_scope: str | None, lifetimes: TokenLifetimes
) -> Refreshed | Refused:
    """Rotate a refresh token: a new access token and refresh token, or the same pair again within the replay window."""
    now = utcnow()
    invalid = Refused(InvalidGrant("The refresh token is invalid, expired or revoked: reconnect the integration."))
    try:
        parsed = credentials.parse(presented)
    except MalformedCredential:
        return invalid
    if parsed.kind is not CredentialKind.PARTNER_REFRESH:
        return invalid
    found = session.scalar(select(RefreshToken).where(RefreshToken.public_id == parsed.public_id))
    if found is None or not hmac.compare_digest(found.token_hash, credentials.fast_hash(presented)):
        return invalid
    connection = lock_connection(session, found.connection_id)
    token = session.scalars(
        select(RefreshToken)
        .where(RefreshToken.id == found.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if connection.client_id != client.id or not serves_workspace(client, connection.workspace_id):
        return Refused(InvalidGrant("The refresh token was issued to another client."))
    if connection.status != "active" or token.status == "revoked" or token.expires_at <= now:
        return Refused(invalid.error, connection, replay=token.status == "rotated")
    access_row = session.scalars(
        select(Credential).where(Credential.connection_id == connection.id).with_for_update()
    ).one()
    if token.status == "rotated":
        return _replay(session, connection, token, access_row, parsed, lifetimes, now)
    granted = token.scope.split()
    scopes = granted if requested_scope is None else requested_scope.split()
    if not set(scopes) <= set(granted):
        return Refused(InvalidScope("The requested scope is wider than the connection was granted."), connection)
    successor_id = credentials.new_public_id()
    access, new_refresh = successor_pair(parsed, access_row.public_id, successor_id, lifetimes)
    access_seconds = lifetimes.access_seconds[client.platform]
    old_expiry = access_row.expires_at
    keep_old = old_expiry is not None and old_expiry > now
    access_row.previous_secret_hash = access_row.secret_hash if keep_old else None
    access_row.previous_valid_until = old_expiry if keep_old else None
    access_row.secret_hash = credentials.fast_hash(access.plaintext)
    access_row.expires_at = now + timedelta(seconds=access_seconds)
    access_row.scopes = list(scopes)
    access_row.hint = credentials.hint(access)
    access_row.rotated_at = now
    access_row.version += 1
    note_change(session, access_row.public_id)
    token.status = "rotated"
    token.rotated_at = now
    token.successor_id = successor_id
    session.add(
        RefreshToken(
            public_id=successor_id,
            connection_id=connection.id,
            token_hash=credentials.fast_hash(new_refresh.plaintext),
            scope=token.scope,
            status="active",
            created_at=now,
            expires_at=now + lifetimes.refresh,
        )
    )
    workspace = session.get_one(Workspace, connection.workspace_id)
    issued = IssuedTokens(
        access_token=access.plaintext,
        refresh_token=new_refresh.plaintext,
        expires_in=access_seconds,
        scope=" ".join(scopes),
        account_id=workspace.account_id,
        connection_id=connection.public_id,
    )
    return Refreshed(issued, connection)


def successor_pair(
    presented: credentials.ParsedCredential, access_id: str, refresh_id: str, lifetimes: TokenLifetimes
) -> tuple[credentials.ParsedCredential, credentials.ParsedCredential]:
    key, material = lifetimes.successor_key, presented.plaintext
    return (
        credentials.derive(CredentialKind.PARTNER_ACCESS, access_id, key, material),
        credentials.derive(CredentialKind.PARTNER_REFRESH, refresh_id, key, material),
    )


def _replay(
    session: Session,
    connection: Connection,
    token: RefreshToken,
    access_row: Credential,
    parsed: credentials.ParsedCredential,
    lifetimes: TokenLifetimes,
    now: datetime,
) -> Refreshed | Refused:
    assert token.rotated_at is not None and token.successor_id is not None
    successor = session.scalar(select(RefreshToken).where(RefreshToken.public_id == token.successor_id))
    access, new_refresh = successor_pair(parsed, access_row.public_id, token.successor_id, lifetimes)
    in_window = now - token.rotated_at <= timedelta(seconds=REFRESH_REPLAY_SECONDS)
    still_current = (
        successor is not None
        and successor.status == "active"
        and hmac.compare_digest(successor.token_hash, credentials.fast_hash(new_refresh.plaintext))
        and hmac.compare_digest(access_row.secret_hash, credentials.fast_hash(access.plaintext))
        and access_row.expires_at is not None
        and access_row.expires_at > now
    )
    if in_window and still_current:
        assert access_row.expires_at is not None
        workspace = session.get_one(Workspace, connection.workspace_id)
        issued = IssuedTokens(
            access_token=access.plaintext,
            refresh_token=new_refresh.plaintext,
            expires_in=max(1, int((access_row.expires_at - now).total_seconds())),
            scope=" ".join(access_row.scopes or []),
            account_id=workspace.account_id,
            connection_id=connection.public_id,
        )
        return Refreshed(issued, connection, replay=True)
    if in_window:  # a late retry after the platform already moved on: refuse, but it is no theft
        return Refused(InvalidGrant("The refresh token was already used: use the newest one."), connection, replay=True)
    end_connection(session, connection, "token-broker", "refresh_token_reused", now)
    error = InvalidGrant("The refresh token was already used; the connection was ended: reconnect.")
    return Refused(error, connection, replay=True, ended=True)


def _access_expiry(row: Any, presented: str) -> datetime | None:
    """When the presented access token expires, if it is the row's current or previous secret; None if neither.
    `row`: a Credential, or a row of its secret_hash, expires_at, previous_secret_hash and previous_valid_until."""
    hashed = credentials.fast_hash(presented)
    if hmac.compare_digest(row.secret_hash, hashed):
        expires: datetime | None = row.expires_at
        return expires
    if row.previous_secret_hash is not None and hmac.compare_digest(row.previous_secret_hash, hashed):
        previous: datetime | None = row.previous_valid_until
        return previous
    return None


@dataclass(frozen=True)
class TokenDescription:
    """What introspection tells about an active token (RFC 7662)."""

    fields: dict[str, Any]


# What introspection tells about the token's connection, read in the same statement as the token itself.
_CONNECTION_FIELDS = (
    Connection.status.label("connection_status"),
    Connection.client_id.label("client_row_id"),
    Connection.approved_by,
    Connection.platform,
    Connection.public_id.label("connection_public_id"),
    OAuthClient.client_id,
    Workspace.account_id,
)


def _with_connection(token_columns: tuple[Any, ...], connection_id: Any, public_id_column: Any, public_id: str) -> Any:
    return (
        select(*token_columns, *_CONNECTION_FIELDS)
        .join(Connection, Connection.id == connection_id)
        .join(OAuthClient, OAuthClient.id == Connection.client_id)
        .join(Workspace, Workspace.id == Connection.workspace_id)
        .where(public_id_column == public_id)
    )


def describe(session: Session, presented: str) -> tuple[int, TokenDescription] | None:
    """The active token's client (its row id) and RFC 7662 description; None for anything not active.

    One statement reads the token with its connection, client and workspace."""
    try:
        parsed = credentials.parse(presented)
    except MalformedCredential:
        return None
    now = utcnow()
    if parsed.kind is CredentialKind.PARTNER_ACCESS:
        columns: tuple[Any, ...] = (
            Credential.status,
            Credential.secret_hash,
            Credential.expires_at,
            Credential.previous_secret_hash,
            Credential.previous_valid_until,
            Credential.scopes,
            Credential.rotated_at,
            Credential.created_at,
        )
        row = session.execute(
            _with_connection(columns, Credential.connection_id, Credential.public_id, parsed.public_id)
        ).one_or_none()
        if row is None or row.status != "active":
            return None
        expires = _access_expiry(row, presented)
        if expires is None or expires <= now:
            return None
        scope, is_access, issued_at = " ".join(row.scopes or []), True, row.rotated_at or row.created_at
    elif parsed.kind is CredentialKind.PARTNER_REFRESH:
        columns = (
            RefreshToken.status,
            RefreshToken.expires_at,
            RefreshToken.token_hash,
            RefreshToken.scope,
            RefreshToken.created_at,
        )
        row = session.execute(
            _with_connection(columns, RefreshToken.connection_id, RefreshToken.public_id, parsed.public_id)
        ).one_or_none()
        if row is None or row.status != "active" or row.expires_at <= now:
            return None
        if not hmac.compare_digest(row.token_hash, credentials.fast_hash(presented)):
            return None
        scope, is_access, expires, issued_at = row.scope, False, row.expires_at, row.created_at
    else:
        return None
    if row.connection_status != "active":
        return None
    return row.client_row_id, TokenDescription(
        {
            "active": True,
            "scope": scope,
            "client_id": row.client_id,
            "token_type": "Bearer" if is_access else "refresh_token",
            "exp": int(expires.timestamp()),
            "iat": int(issued_at.timestamp()),
            "sub": row.approved_by,
            "account_id": row.account_id,
            "platform": row.platform,
            "connection_id": row.connection_public_id,
        }
    )


def revoke(session: Session, client: ClientRow, presented: str) -> Connection | None:
    """RFC 7009: the platform revokes its own token; the connection ends, and is returned. Another client's token is
    left alone (None), as is a connection already ended."""
    try:
        parsed = credentials.parse(presented)
    except MalformedCredential:
        return None
    connection_id: int | None = None
    if parsed.kind is CredentialKind.PARTNER_ACCESS:
        row = session.scalar(select(Credential).where(Credential.public_id == parsed.public_id))
        if row is not None and _access_expiry(row, presented) is not None:
            connection_id = row.connection_id
    elif parsed.kind is CredentialKind.PARTNER_REFRESH:
        token = session.scalar(select(RefreshToken).where(RefreshToken.public_id == parsed.public_id))
        if token is not None and hmac.compare_digest(token.token_hash, credentials.fast_hash(presented)):
            connection_id = token.connection_id
    if connection_id is None:
        return None
    connection = lock_connection(session, connection_id)
    if connection.client_id != client.id or connection.status != "active":
        return None
    end_connection(session, connection, f"client:{client.client_id}", "revoked_by_platform", utcnow())
    return connection
