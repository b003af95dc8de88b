"""OAuth clients, connections, authorization codes and refresh tokens. Only hashes of their secrets are stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from token_broker.scopes import PLATFORMS
from token_broker.store.models import Base, _in

CONNECTION_STATUSES = ("active", "disconnected")
REFRESH_STATUSES = ("active", "rotated", "revoked")


class OAuthClient(Base):
    """A platform's OAuth client: one operator-registered client each for Zapier and Make, one per n8n instance.

    An n8n client (workspace_id set) yields tokens for its own workspace only."""

    __tablename__ = "oauth_clients"
    __table_args__ = (
        CheckConstraint(_in("platform", PLATFORMS), name="platform_known"),
        CheckConstraint("(platform = 'n8n') = (workspace_id IS NOT NULL)", name="n8n_clients_belong_to_a_workspace"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(200))
    platform: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[int | None] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(80))
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(80))
    rotated_at: Mapped[datetime | None]
    # After a rotation, the previous secret's hash works until previous_valid_until (the grace window); then neither
    # is kept. Revoking clears both.
    previous_secret_hash: Mapped[str | None] = mapped_column(String(200))
    previous_valid_until: Mapped[datetime | None]


class Connection(Base):
    """One completed connect flow: a workspace, a client, the approving user, the granted scopes, one partner install
    token (a credentials row) and its refresh-token family. Disconnecting ends all of that at once."""

    __tablename__ = "connections"
    __table_args__ = (
        CheckConstraint(_in("status", CONNECTION_STATUSES), name="status_known"),
        CheckConstraint("(status = 'disconnected') = (disconnected_at IS NOT NULL)", name="disconnected_has_time"),
        Index("ix_connections_workspace_created", "workspace_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    approved_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="active")
    disconnected_at: Mapped[datetime | None]
    disconnected_by: Mapped[str | None] = mapped_column(String(80))
    disconnect_reason: Mapped[str | None] = mapped_column(String(64))


class AuthorizationCode(Base):
    """A code from an approved consent: single use, short-lived, bound to client, redirect URI and PKCE challenge."""

    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(100), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str | None] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(500))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="SET NULL"))


class RefreshToken(Base):
    """A refresh token of a connection's family. Rotated on every use; `successor_id` names the one that replaced it."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        CheckConstraint(_in("status", REFRESH_STATUSES), name="status_known"),
        CheckConstraint("(status = 'rotated') = (rotated_at IS NOT NULL)", name="rotated_has_time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(12), unique=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]
    successor_id: Mapped[str | None] = mapped_column(String(12))
    revoked_at: Mapped[datetime | None]
