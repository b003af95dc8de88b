"""Verifying a presented credential against the store: parse, look up by id, check the secret, then its status.

The secret is checked before anything about the credential's state is told, so that only a holder of the secret learns
that it was revoked or expired. An unknown id costs a dummy argon2 check, so timing does not reveal which ids exist.
This is the slow, authoritative path; the request guard keeps its results in a cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from token_broker import credentials
from token_broker.credentials import CredentialKind, SecretHasher
from token_broker.errors import InvalidCredential, ReconnectRequired, TokenExpired
from token_broker.store.database import Database
from token_broker.store.models import Credential, Workspace, utcnow

INVALID_MESSAGE = (
    "The API key is not valid: it may have been revoked, rotated out, or mistyped. "
    "Create a new key in the workspace's API access panel."
)

RECONNECT_MESSAGE = (
    "This connection was disconnected or its token revoked by a workspace admin: reconnect the integration to continue."
)


@dataclass(frozen=True)
class VerifiedCredential:
    """A snapshot of what a verified credential may do; `valid_until` bounds how long the snapshot may be trusted."""

    id: str
    kind: CredentialKind
    platform: str | None
    name: str
    workspace_id: int
    account_id: str
    workspace_name: str
    scopes: tuple[str, ...] | None
    allowed_ips: tuple[str, ...]
    rate_limits: tuple[str, ...]
    valid_until: datetime | None
    version: int


def verify(database: Database, hasher: SecretHasher, presented: str, now: datetime | None = None) -> VerifiedCredential:
    """The credential a presented secret stands for, or a CredentialRefused error saying why not."""
    parsed = credentials.parse(presented)
    now = now or utcnow()
    if parsed.kind is CredentialKind.PARTNER_REFRESH:
        raise InvalidCredential("A refresh token is not an API credential: exchange it at the token endpoint.")
    with database.read() as session:
        found = session.execute(
            select(Credential, Workspace)
            .join(Workspace, Workspace.id == Credential.workspace_id)
            .where(Credential.public_id == parsed.public_id)
        ).first()
    if found is None or found[0].kind != parsed.kind.value:
        hasher.verify_nothing()
        raise InvalidCredential(INVALID_MESSAGE)
    row, workspace = found
    valid_until = row.expires_at
    if not hasher.verify(row.secret_hash, presented):
        previous_ok = (
            row.previous_secret_hash is not None
            and row.previous_valid_until is not None
            and row.previous_valid_until > now
            and hasher.verify(row.previous_secret_hash, presented)
        )
        if not previous_ok:
            raise InvalidCredential(INVALID_MESSAGE)
        valid_until = min(filter(None, (row.expires_at, row.previous_valid_until)))
    if row.status == "revoked":
        if row.kind == CredentialKind.PARTNER_ACCESS.value:
            raise ReconnectRequired(RECONNECT_MESSAGE)
        raise InvalidCredential(INVALID_MESSAGE)
    if row.expires_at is not None and row.expires_at <= now:
        if row.kind == CredentialKind.PARTNER_ACCESS.value:
            raise TokenExpired("The access token has expired: refresh it at the token endpoint.")
        raise InvalidCredential("The API key has expired. Create a new key in the workspace's API access panel.")
    return VerifiedCredential(
        id=row.public_id,
        kind=parsed.kind,
        platform=row.platform,
        name=row.name,
        workspace_id=workspace.id,
        account_id=workspace.account_id,
        workspace_name=workspace.name,
        scopes=None if row.scopes is None else tuple(row.scopes),
        allowed_ips=tuple(row.allowed_ips),
        rate_limits=tuple(row.rate_limits),
        valid_until=valid_until,
        version=row.version,
    )


def record_last_used(database: Database, last_used: Mapping[str, datetime]) -> None:
    """Write a batch of last-used times (credential id to time); never moves a time backwards."""
    if not last_used:
        return
    with database.write() as session:
        for public_id, moment in sorted(last_used.items()):
            session.execute(
                update(Credential)
                .where(Credential.public_id == public_id)
                .where((Credential.last_used_at.is_(None)) | (Credential.last_used_at < moment))
                .values(last_used_at=moment)
            )
