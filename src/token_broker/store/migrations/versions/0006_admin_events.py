"""admin events in the outbox; when a credential's admins were told it expires soon

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINK_EVENTS = "'link.created', 'link.updated', 'link.deleted', 'link.clicked'"
ADMIN_EVENTS = "'integration.disconnected', 'credential.revoked', 'credential.rotated', 'credential.expiring'"


def upgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_outbox_events_type_known"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_outbox_events_type_known"), f"type IN ({LINK_EVENTS}, {ADMIN_EVENTS})"
        )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expiring_notified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_column("expiring_notified_at")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_outbox_events_type_known"), type_="check")
        batch_op.create_check_constraint(op.f("ck_outbox_events_type_known"), f"type IN ({LINK_EVENTS})")
