"""Who governs an organization: its owners and admins. Workspaces name their organization (workspaces.organization_id);
membership of a workspace stays in `memberships`, so every workspace rule is unchanged by organizations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from token_broker.store.models import Base, _in

ORGANIZATION_ROLES = ("owner", "admin")


class OrganizationRole(Base):
    __tablename__ = "organization_roles"
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id", name="uq_organization_roles_organization_user"),
        CheckConstraint(_in("role", ORGANIZATION_ROLES), name="role_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
