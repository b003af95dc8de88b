"""webhook deliveries: an index of the queue in claim order (due time, id), so that a claim reads only the deliveries
it takes instead of sorting the whole backlog

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = "status IN ('pending', 'delivering')"


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_queue",
            ["next_attempt_at", "id"],
            unique=False,
            sqlite_where=sa.text(QUEUED),
            postgresql_where=sa.text(QUEUED),
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_webhook_deliveries_queue", sqlite_where=sa.text(QUEUED), postgresql_where=sa.text(QUEUED)
        )
