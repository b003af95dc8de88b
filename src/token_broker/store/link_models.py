"""The link shortener's tables: links, their clicks, and the outbox of events that webhooks deliver.

They live on the same `Base` as the key store's tables but in their own module, which `models` does not import;
`token_broker.store.schema` imports both, and is what migrations and tests read the whole schema from.
No IP address of a visitor is ever stored: a click keeps its time, the referrer's host and a truncated user agent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from token_broker.store.models import Base, _in

DEFAULT_DOMAIN = "nim.link"
LINK_EVENT_TYPES = ("link.created", "link.updated", "link.deleted", "link.clicked")
# For the workspace's admins: what happened to its credentials and connections.
ADMIN_EVENT_TYPES = (
    "integration.disconnected",
    "credential.revoked",
    "credential.rotated",
    "credential.expiring",
    "credential.leaked",
)
EVENT_TYPES = LINK_EVENT_TYPES + ADMIN_EVENT_TYPES
MAX_SLUG_LENGTH = 64
MAX_DESTINATION_LENGTH = 2048
MAX_REFERRER_LENGTH = 255
MAX_USER_AGENT_LENGTH = 300


class Link(Base):
    """A short link: `slug` as its creator wrote it, `slug_key` its lowercase form, unique per domain."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("domain", "slug_key", name="uq_links_domain_slug_key"),
        CheckConstraint("slug_key = lower(slug)", name="slug_key_is_lowercase_slug"),
        CheckConstraint("click_count >= 0", name="click_count_not_negative"),
        Index("ix_links_workspace_id_id", "workspace_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(20), unique=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(253), default=DEFAULT_DOMAIN)
    slug: Mapped[str] = mapped_column(String(MAX_SLUG_LENGTH))
    slug_key: Mapped[str] = mapped_column(String(MAX_SLUG_LENGTH))
    destination: Mapped[str] = mapped_column(String(MAX_DESTINATION_LENGTH))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(80))
    click_count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None]


class LinkClick(Base):
    """One visit through a short link. Deliberately no IP address."""

    __tablename__ = "link_clicks"
    __table_args__ = (Index("ix_link_clicks_link_id_clicked_at", "link_id", "clicked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id", ondelete="CASCADE"))
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    clicked_at: Mapped[datetime]
    referrer: Mapped[str | None] = mapped_column(String(MAX_REFERRER_LENGTH))
    user_agent: Mapped[str | None] = mapped_column(String(MAX_USER_AGENT_LENGTH))


class OutboxEvent(Base):
    """An event written in the transaction of the change it announces; webhook deliveries are made from these."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        CheckConstraint(_in("type", EVENT_TYPES), name="type_known"),
        Index(
            "ix_outbox_events_not_fanned_out",
            "id",
            sqlite_where=text("fanned_out_at IS NULL"),
            postgresql_where=text("fanned_out_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(20), unique=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    source_credential_id: Mapped[str | None] = mapped_column(String(12))
    # Set by the webhook worker in the transaction that makes the event's deliveries: each event is fanned out once.
    fanned_out_at: Mapped[datetime | None]
