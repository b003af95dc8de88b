"""webhooks: hooks, their deliveries and the attempts log; outbox events remember when they were fanned out

Events written before hooks existed are marked fanned out: no hook could want them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 02:45:37.429916
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=24), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("target_url", sa.String(length=2048), nullable=False),
        sa.Column("secret_ciphertext", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.CheckConstraint("(status = 'active') = (ended_at IS NULL)", name=op.f("ck_hooks_ended_has_time")),
        sa.CheckConstraint(
            "end_reason IN ('deleted', 'gone', 'failing', 'connection_ended', 'credential_revoked', "
            "'secret_unreadable')",
            name=op.f("ck_hooks_end_reason_known"),
        ),
        sa.CheckConstraint("status IN ('active', 'disabled', 'deleted')", name=op.f("ck_hooks_status_known")),
        sa.CheckConstraint("(ended_at IS NULL) = (end_reason IS NULL)", name=op.f("ck_hooks_ended_has_reason")),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_hooks_connection_id_connections"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["credential_id"], ["credentials.id"], name=op.f("fk_hooks_credential_id_credentials"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_hooks_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hooks")),
        sa.UniqueConstraint("public_id", name=op.f("uq_hooks_public_id")),
    )
    with op.batch_alter_table("hooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hooks_connection_id"), ["connection_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_hooks_credential_id"), ["credential_id"], unique=False)
        batch_op.create_index("ix_hooks_workspace_status_event", ["workspace_id", "status", "event"], unique=False)

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("hook_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'delivering') = (claimed_by IS NOT NULL)",
            name=op.f("ck_webhook_deliveries_delivering_is_claimed"),
        ),
        sa.CheckConstraint(
            "(status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)",
            name=op.f("ck_webhook_deliveries_finished_has_time"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'delivering', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_webhook_deliveries_status_known"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_webhook_deliveries_attempts_not_negative")),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["outbox_events.id"],
            name=op.f("fk_webhook_deliveries_event_id_outbox_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hook_id"], ["hooks.id"], name=op.f("fk_webhook_deliveries_hook_id_hooks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("event_id", "hook_id", name="uq_webhook_deliveries_event_hook"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_webhook_deliveries_hook_id_id", ["hook_id", "id"], unique=False)

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("hook_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('succeeded', 'retry', 'failed', 'gone', 'refused')",
            name=op.f("ck_webhook_attempts_outcome_known"),
        ),
        sa.CheckConstraint("duration_ms >= 0", name=op.f("ck_webhook_attempts_duration_not_negative")),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hook_id"], ["hooks.id"], name=op.f("fk_webhook_attempts_hook_id_hooks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_attempts_delivery_id"), ["delivery_id"], unique=False)
        batch_op.create_index("ix_webhook_attempts_hook_id_id", ["hook_id", "id"], unique=False)

    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fanned_out_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_outbox_events_not_fanned_out",
            ["id"],
            unique=False,
            sqlite_where=sa.text("fanned_out_at IS NULL"),
            postgresql_where=sa.text("fanned_out_at IS NULL"),
        )
    op.execute(sa.text("UPDATE outbox_events SET fanned_out_at = created_at"))


def downgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_events_not_fanned_out",
            sqlite_where=sa.text("fanned_out_at IS NULL"),
            postgresql_where=sa.text("fanned_out_at IS NULL"),
        )
        batch_op.drop_column("fanned_out_at")

    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_attempts_hook_id_id")
        batch_op.drop_index(batch_op.f("ix_webhook_attempts_delivery_id"))

    op.drop_table("webhook_attempts")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_hook_id_id")
        batch_op.drop_index("ix_webhook_deliveries_due")

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("hooks", schema=None) as batch_op:
        batch_op.drop_index("ix_hooks_workspace_status_event")
        batch_op.drop_index(batch_op.f("ix_hooks_credential_id"))
        batch_op.drop_index(batch_op.f("ix_hooks_connection_id"))

    op.drop_table("hooks")
