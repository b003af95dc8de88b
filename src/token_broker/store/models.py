"""The store's tables, as SQLAlchemy 2 models. Only hashes of secrets are stored; invariants are CHECK constraints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, Index, Integer, MetaData, String, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ROLES = ("owner", "admin", "member", "viewer")
CREDENTIAL_KINDS = ("key", "pat")
CREDENTIAL_STATUSES = ("active", "revoked")
AUDIT_OUTCOMES = ("ok", "refused")
# What a secret-scanning report of a live credential does: revoke it at once, or only tell the admins.
LEAK_RESPONSES = ("revoke", "notify")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Workspace(Base):
    __tablename__ = "workspaces"
    __table_args__ = (CheckConstraint(_in("leak_response", LEAK_RESPONSES), name="leak_response_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    created_at: Mapped[datetime]
    leak_response: Mapped[str] = mapped_column(String(16), default="revoke", server_default="revoke")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    # Carried in the signed session cookie and compared on every dashboard request: raising it (sign-out, a new
    # password, a removal or demotion) ends every session issued before.
    session_generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "workspace_id", name="user_workspace"),
        CheckConstraint(_in("role", ROLES), name="role_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class Credential(Base):
    """Both kinds of credential: workspace API keys (kind 'key') and partner install tokens (kind 'pat')."""

    __tablename__ = "credentials"
    __table_args__ = (
        CheckConstraint(_in("kind", CREDENTIAL_KINDS), name="kind_known"),
        CheckConstraint(_in("status", CREDENTIAL_STATUSES), name="status_known"),
        CheckConstraint("(status = 'revoked') = (revoked_at IS NOT NULL)", name="revoked_has_time"),
        CheckConstraint(
            "(previous_secret_hash IS NULL) = (previous_valid_until IS NULL)", name="previous_secret_has_deadline"
        ),
        CheckConstraint("(kind = 'pat') = (platform IS NOT NULL)", name="partner_has_platform"),
        CheckConstraint("(kind = 'pat') = (connection_id IS NOT NULL)", name="partner_has_connection"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index("ix_credentials_workspace_created", "workspace_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(12), unique=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    platform: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(200))
    previous_secret_hash: Mapped[str | None] = mapped_column(String(200))
    previous_valid_until: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="active")
    scopes: Mapped[list[str] | None] = mapped_column(JSON)
    allowed_ips: Mapped[list[str]] = mapped_column(JSON, default=list)
    rate_limits: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None]
    hint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(80))
    last_used_at: Mapped[datetime | None]
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(Integer, default=1)
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    expiring_notified_at: Mapped[datetime | None]


class CredentialChange(Base):
    """A note that a credential changed (rotated, revoked, disconnected), written in the change's transaction.

    Every server instance reads the notes written since it last looked and drops what it had cached for those
    credentials, so that a change made anywhere, by another instance or the CLI, is honoured everywhere within a
    second. AUTOINCREMENT on SQLite keeps ids rising even after old notes are pruned.
    """

    __tablename__ = "credential_changes"
    __table_args__ = (Index("ix_credential_changes_changed_at", "changed_at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    credential_id: Mapped[str] = mapped_column(String(12))
    changed_at: Mapped[datetime]


class AuditEvent(Base):
    """One row per change to a credential or membership, and per refused attempt. Never holds secret material."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint(_in("outcome", AUDIT_OUTCOMES), name="outcome_known"),
        Index("ix_audit_events_workspace_time", "workspace_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(80))
    workspace_id: Mapped[int | None] = mapped_column(ForeignKey("workspaces.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def utcnow() -> datetime:
    return datetime.now(UTC)
