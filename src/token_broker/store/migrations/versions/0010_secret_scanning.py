"""secret scanning: each workspace's answer to a leaked credential, the credential.leaked notice, and the digests of
reports already acted on

Revision ID: 0010
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINK_EVENTS = "'link.created', 'link.updated', 'link.deleted', 'link.clicked'"
ADMIN_EVENTS = "'integration.disconnected', 'credential.revoked', 'credential.rotated', 'credential.expiring'"
LEAKED = "'credential.leaked'"


def upgrade() -> None:
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leak_response", sa.String(length=16), server_default="revoke", nullable=False))
        batch_op.create_check_constraint(
            op.f("ck_workspaces_leak_response_known"), "leak_response IN ('revoke', 'notify')"
        )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_outbox_events_type_known"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_outbox_events_type_known"), f"type IN ({LINK_EVENTS}, {ADMIN_EVENTS}, {LEAKED})"
        )
    op.create_table(
        "secret_scanning_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("body_digest", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secret_scanning_reports")),
        sa.UniqueConstraint("body_digest", name=op.f("uq_secret_scanning_reports_body_digest")),
    )
    op.create_index("ix_secret_scanning_reports_received_at", "secret_scanning_reports", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_secret_scanning_reports_received_at", table_name="secret_scanning_reports")
    op.drop_table("secret_scanning_reports")
    op.execute("DELETE FROM outbox_events WHERE type = 'credential.leaked'")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_outbox_events_type_known"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_outbox_events_type_known"), f"type IN ({LINK_EVENTS}, {ADMIN_EVENTS})"
        )
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_workspaces_leak_response_known"), type_="check")
        batch_op.drop_column("leak_response")
