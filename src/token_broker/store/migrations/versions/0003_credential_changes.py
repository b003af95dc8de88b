"""credential change notes, read by every instance to drop cached verifications

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credential_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=12), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_changes")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("credential_changes", schema=None) as batch_op:
        batch_op.create_index("ix_credential_changes_changed_at", ["changed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("credential_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_credential_changes_changed_at")
    op.drop_table("credential_changes")
