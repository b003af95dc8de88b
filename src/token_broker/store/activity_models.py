"""Recent activity: one row per link creation, destination or slug change, and deletion, written in the change's
transaction, naming the credential that made it and the address it came from. Kept apart from the outbox, whose rows
exist for delivery, so that what an admin reviews does not depend on webhooks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from token_broker.store.link_models import MAX_DESTINATION_LENGTH, MAX_SLUG_LENGTH
from token_broker.store.models import Base, _in

ACTIVITY_ACTIONS = ("link.created", "link.updated", "link.deleted")


class LinkActivity(Base):
    __tablename__ = "link_activity"
    __table_args__ = (
        CheckConstraint(_in("action", ACTIVITY_ACTIONS), name="action_known"),
        Index("ix_link_activity_workspace_id_id", "workspace_id", "id"),
        Index("ix_link_activity_workspace_credential", "workspace_id", "credential_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(16))
    link_id: Mapped[str] = mapped_column(String(20))
    slug: Mapped[str] = mapped_column(String(MAX_SLUG_LENGTH))
    destination: Mapped[str] = mapped_column(String(MAX_DESTINATION_LENGTH))
    previous_destination: Mapped[str | None] = mapped_column(String(MAX_DESTINATION_LENGTH))
    credential_id: Mapped[str | None] = mapped_column(String(12))
    actor: Mapped[str] = mapped_column(String(80))
    client_address: Mapped[str | None] = mapped_column(String(64))
