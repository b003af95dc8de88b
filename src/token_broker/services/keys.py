"""The key store's rules: create, list, rotate and revoke credentials, each change audited in its own transaction.

Secrets are hashed before a write transaction opens (argon2 is slow on purpose; holding SQLite's write lock through it
would queue every other writer behind it). Rotations and revocations lock the credential's row, so that racing
requests apply one after the other and each acknowledged change has exactly one audit row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from token_broker import credentials, policy
from token_broker.credentials import CredentialKind, SecretHasher
from token_broker.errors import Conflict, NotFound
from token_broker.scopes import validate_scopes
from token_broker.services import admin_notices, webhook_subscriptions
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, run_audited
from token_broker.services.connections import end_connection, lock_connection
from token_broker.services.credential_changes import note_change
from token_broker.services.credential_revocation import revoke_credential
from token_broker.services.workspaces import authorize, find_workspace, workspace_to_manage
from token_broker.store.database import Database
from token_broker.store.models import Credential, Workspace, utcnow
from token_broker.store.oauth_models import Connection
from token_broker.times import rfc3339

KIND_NAMES = {"key": "workspace_key", "pat": "partner_install_token"}


def credential_status(row: Credential, now: datetime) -> str:
    if row.status == "revoked":
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


@dataclass(frozen=True)
class CredentialView:
    """A credential as lists show it: everything but secret material."""

    id: str
    account_id: str
    name: str
    kind: str
    platform: str | None
    status: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    expires_at: datetime | None
    scopes: tuple[str, ...] | None
    allowed_ips: tuple[str, ...]
    rate_limits: tuple[str, ...]
    hint: str
    grace_until: datetime | None

    @classmethod
    def of(cls, row: Credential, account_id: str, now: datetime) -> CredentialView:
        grace = row.previous_valid_until if row.previous_valid_until and row.previous_valid_until > now else None
        return cls(
            id=row.public_id,
            account_id=account_id,
            name=row.name,
            kind=KIND_NAMES[row.kind],
            platform=row.platform,
            status=credential_status(row, now),
            created_at=row.created_at,
            created_by=row.created_by,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            scopes=None if row.scopes is None else tuple(row.scopes),
            allowed_ips=tuple(row.allowed_ips),
            rate_limits=tuple(row.rate_limits),
            hint=row.hint,
            grace_until=None if row.status == "revoked" else grace,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "name": self.name,
            "kind": self.kind,
            "platform": self.platform,
            "status": self.status,
            "created_at": rfc3339(self.created_at),
            "created_by": self.created_by,
            "last_used_at": rfc3339(self.last_used_at),
            "expires_at": rfc3339(self.expires_at),
            "scopes": None if self.scopes is None else list(self.scopes),
            "allowed_ips": list(self.allowed_ips),
            "rate_limits": list(self.rate_limits),
            "hint": self.hint,
            "grace_until": rfc3339(self.grace_until),
        }


@dataclass(frozen=True)
class IssuedKey:
    """A credential together with its plaintext: returned once, at creation or rotation, and never again."""

    view: CredentialView
    plaintext: str | None

    def __repr__(self) -> str:
        return f"IssuedKey(id={self.view.id!r})"

    def to_json(self) -> dict[str, Any]:
        return {**self.view.to_json(), "key": self.plaintext}


@dataclass(frozen=True)
class KeyRequest:
    """What an admin asks for when creating a workspace key, before validation."""

    name: object
    scopes: Sequence[str] | None = None
    expires_in: object = None
    allowed_ips: Sequence[object] | None = None
    rate_limits: Sequence[object] | None = None


def create_key(
    database: Database, hasher: SecretHasher, actor: Actor, account_id: str, request: KeyRequest
) -> IssuedKey:
    new = credentials.generate(CredentialKind.WORKSPACE_KEY)
    secret_hash = hasher.hash(new.plaintext)

    def work(session: Session, entry: AuditEntry) -> IssuedKey:
        workspace = find_workspace(session, account_id)
        entry.workspace_id = workspace.id
        authorize(session, actor, workspace, manage=True)
        name = policy.validate_name(request.name)
        scopes = None if request.scopes is None else list(validate_scopes(request.scopes))
        expires_in = policy.validate_expires_in(request.expires_in)
        allowed_ips = list(policy.validate_allowed_ips(request.allowed_ips or []))
        limits = [str(limit) for limit in policy.validate_rate_limits(request.rate_limits)]
        now = utcnow()
        row = Credential(
            public_id=new.public_id,
            workspace_id=workspace.id,
            kind=CredentialKind.WORKSPACE_KEY.value,
            name=name,
            secret_hash=secret_hash,
            status="active",
            scopes=scopes,
            allowed_ips=allowed_ips,
            rate_limits=limits,
            expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
            hint=credentials.hint(new),
            created_at=now,
            created_by=actor.label,
            version=1,
        )
        session.add(row)
        session.flush()
        entry.target_id = row.public_id
        entry.details = {"name": name, "scopes": scopes, "allowed_ips": allowed_ips, "rate_limits": limits}
        return IssuedKey(view=CredentialView.of(row, workspace.account_id, now), plaintext=new.plaintext)

    return run_audited(database, actor, "credential.created", work)


def list_keys(database: Database, actor: Actor, account_id: str) -> list[CredentialView]:
    """Both kinds of credential of a workspace, newest first; any role may list."""
    with database.read() as session:
        workspace = find_workspace(session, account_id)
        authorize(session, actor, workspace, manage=False)
        rows = session.scalars(
            select(Credential)
            .where(Credential.workspace_id == workspace.id)
            .order_by(Credential.created_at.desc(), Credential.id.desc())
        )
        now = utcnow()
        return [CredentialView.of(row, workspace.account_id, now) for row in rows]


def _locked_credential(
    session: Session, actor: Actor, entry: AuditEntry, credential_id: str, account_id: str | None
) -> tuple[Credential, Workspace, Connection | None]:
    """The credential's row, locked for this transaction (after its connection's, for a partner token: the one lock
    order every service keeps), once the actor is known to be allowed to manage it."""
    entry.target_id = credential_id[:64]
    not_found = NotFound(f"No key {credential_id!r} is visible to you.")
    if not credentials.is_public_id(credential_id):
        raise not_found
    found = session.scalar(select(Credential).where(Credential.public_id == credential_id))
    if found is None:
        raise not_found
    connection = lock_connection(session, found.connection_id) if found.connection_id is not None else None
    row = session.scalars(
        select(Credential).where(Credential.id == found.id).with_for_update().execution_options(populate_existing=True)
    ).one()
    workspace = workspace_to_manage(session, actor, entry, row.workspace_id, account_id, not_found)
    return row, workspace, connection


def _end_partner_connection(
    session: Session, actor: Actor, entry: AuditEntry, connection: Connection, reason: str
) -> None:
    """Rotating or revoking a partner install token ends its whole connection: the platform must reconnect."""
    if connection.status != "active":
        raise Conflict("This partner install token's connection is already disconnected.")
    end_connection(session, connection, actor.label, reason, utcnow())
    entry.details = {"connection_id": connection.public_id, "reason": reason}


def rotate_key(
    database: Database,
    hasher: SecretHasher,
    actor: Actor,
    credential_id: str,
    grace_seconds: object = None,
    account_id: str | None = None,
) -> IssuedKey:
    """A new secret under the same id, name, scopes and limits; the old one works until the grace window ends.

    Only one earlier secret is kept: rotating again during a grace window ends the older secret's grace at once.
    A partner install token is not given a new secret: rotating it ends its connection (plaintext None), and the
    platform gets new tokens by reconnecting.
    """
    new = credentials.generate(
        CredentialKind.WORKSPACE_KEY, public_id=credential_id if credentials.is_public_id(credential_id) else None
    )
    secret_hash = hasher.hash(new.plaintext)

    def work(session: Session, entry: AuditEntry) -> IssuedKey:
        row, workspace, connection = _locked_credential(session, actor, entry, credential_id, account_id)
        if connection is not None:
            _end_partner_connection(session, actor, entry, connection, "token_rotated")
            return IssuedKey(view=CredentialView.of(row, workspace.account_id, utcnow()), plaintext=None)
        grace = policy.validate_grace(grace_seconds)
        now = utcnow()
        status = credential_status(row, now)
        if status != "active":
            raise Conflict(f"Key {credential_id} is {status}; only an active key can be rotated.")
        row.previous_secret_hash = row.secret_hash if grace > 0 else None
        row.previous_valid_until = now + timedelta(seconds=grace) if grace > 0 else None
        row.secret_hash = secret_hash
        row.hint = credentials.hint(new)
        row.rotated_at = now
        row.version += 1
        note_change(session, row.public_id)
        entry.details = {"grace_seconds": grace, "grace_until": rfc3339(row.previous_valid_until)}
        view = CredentialView.of(row, workspace.account_id, now)
        admin_notices.credential_changed(session, workspace, "credential.rotated", view.to_json())
        return IssuedKey(view=view, plaintext=new.plaintext)

    return run_audited(database, actor, "credential.rotated", work)


def revoke_key(database: Database, actor: Actor, credential_id: str, account_id: str | None = None) -> CredentialView:
    """Revoke at once, with no grace: the next request with any of the credential's secrets is refused."""

    def work(session: Session, entry: AuditEntry) -> CredentialView:
        row, workspace, connection = _locked_credential(session, actor, entry, credential_id, account_id)
        if row.status == "revoked":
            raise Conflict(f"Key {credential_id} is already revoked.")
        if connection is not None:
            _end_partner_connection(session, actor, entry, connection, "token_revoked")
            return CredentialView.of(row, workspace.account_id, utcnow())
        return revoke_workspace_key(session, row, workspace, actor.label, utcnow())

    return run_audited(database, actor, "credential.revoked", work)


def revoke_workspace_key(
    session: Session, row: Credential, workspace: Workspace, by: str, now: datetime
) -> CredentialView:
    """Revoke a workspace key whose row the caller has locked, in the caller's transaction: every secret of it stops,
    its hooks are disabled, and the admins are told."""
    webhook_subscriptions.disable_hooks_for_credential(session, row.id, now)
    revoke_credential(session, row, by, now)
    view = CredentialView.of(row, workspace.account_id, now)
    admin_notices.credential_changed(session, workspace, "credential.revoked", view.to_json())
    return view
