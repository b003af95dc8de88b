"""oauth clients: who revoked one, and the previous secret that works until its rotation's grace window ends

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoked_by", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("previous_secret_hash", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.drop_column("previous_valid_until")
        batch_op.drop_column("previous_secret_hash")
        batch_op.drop_column("rotated_at")
        batch_op.drop_column("revoked_by")
