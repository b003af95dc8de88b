"""session generations, organization roles, link expiry and recent link activity

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_generation", sa.Integer(), server_default="1", nullable=False))
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "organization_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('owner', 'admin')", name=op.f("ck_organization_roles_role_known")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_organization_roles_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_organization_roles_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization_roles")),
        sa.UniqueConstraint("organization_id", "user_id", name="uq_organization_roles_organization_user"),
    )
    op.create_index(op.f("ix_organization_roles_user_id"), "organization_roles", ["user_id"], unique=False)
    op.create_table(
        "link_activity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("link_id", sa.String(length=20), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("destination", sa.String(length=2048), nullable=False),
        sa.Column("previous_destination", sa.String(length=2048), nullable=True),
        sa.Column("credential_id", sa.String(length=12), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "action IN ('link.created', 'link.updated', 'link.deleted')", name=op.f("ck_link_activity_action_known")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_link_activity_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_activity")),
    )
    op.create_index("ix_link_activity_workspace_id_id", "link_activity", ["workspace_id", "id"], unique=False)
    op.create_index(
        "ix_link_activity_workspace_credential", "link_activity", ["workspace_id", "credential_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_link_activity_workspace_credential", table_name="link_activity")
    op.drop_index("ix_link_activity_workspace_id_id", table_name="link_activity")
    op.drop_table("link_activity")
    op.drop_index(op.f("ix_organization_roles_user_id"), table_name="organization_roles")
    op.drop_table("organization_roles")
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_generation")
