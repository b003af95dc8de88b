"""Who and where, for the dashboard to show: the workspaces a user can switch to (with the organization above each),
the people of a workspace, and the n8n instances registered for it. Read-only; nothing here is secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from token_broker.services.actors import Actor
from token_broker.services.workspaces import authorize, find_workspace
from token_broker.store.database import Database
from token_broker.store.models import Membership, Organization, User, Workspace, utcnow
from token_broker.store.oauth_models import OAuthClient


@dataclass(frozen=True)
class WorkspaceChoice:
    account_id: str
    name: str
    role: str
    organization: str | None
    organization_id: str | None = None


def workspace_choices(database: Database, user_id: int) -> list[WorkspaceChoice]:
    """The workspaces a user has a role in, oldest membership first, each with its organization's name if any."""
    with database.read() as session:
        rows = session.execute(
            select(Workspace.account_id, Workspace.name, Membership.role, Organization.name, Organization.public_id)
            .join(Membership, Membership.workspace_id == Workspace.id)
            .outerjoin(Organization, Organization.id == Workspace.organization_id)
            .where(Membership.user_id == user_id)
            .order_by(Membership.id)
        )
        return [
            WorkspaceChoice(account_id=a, name=n, role=r, organization=o, organization_id=i) for a, n, r, o, i in rows
        ]


@dataclass(frozen=True)
class Person:
    label: str
    email: str
    role: str


def people_of(database: Database, actor: Actor, account_id: str) -> list[Person]:
    """The workspace's members, by email; any role may look (they see each other's names on keys anyway)."""
    with database.read() as session:
        workspace = find_workspace(session, account_id)
        authorize(session, actor, workspace, manage=False)
        rows = session.execute(
            select(User.public_id, User.email, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.workspace_id == workspace.id)
            .order_by(User.email)
        )
        return [Person(label=label, email=email, role=role) for label, email, role in rows]


@dataclass(frozen=True)
class ClientView:
    client_id: str
    platform: str
    redirect_uris: tuple[str, ...]
    created_at: datetime
    created_by: str
    grace_until: datetime | None  # while the secret replaced by a rotation still works


def workspace_clients(database: Database, actor: Actor, account_id: str) -> list[ClientView]:
    """The OAuth clients registered for this workspace alone (n8n instances), newest first; never their secrets."""
    with database.read() as session:
        workspace = find_workspace(session, account_id)
        authorize(session, actor, workspace, manage=False)
        now = utcnow()
        rows = session.scalars(
            select(OAuthClient)
            .where(OAuthClient.workspace_id == workspace.id, OAuthClient.revoked_at.is_(None))
            .order_by(OAuthClient.created_at.desc(), OAuthClient.id.desc())
        )
        return [
            ClientView(
                client_id=row.client_id,
                platform=row.platform,
                redirect_uris=tuple(row.redirect_uris),
                created_at=row.created_at,
                created_by=row.created_by,
                grace_until=row.previous_valid_until
                if row.previous_valid_until is not None and row.previous_valid_until > now
                else None,
            )
            for row in rows
        ]


def role_of(database: Database, user_id: int, account_id: str) -> str | None:
    """The user's role in the workspace, or None where they have none (or it does not exist)."""
    with database.read() as session:
        role: str | None = session.scalar(
            select(Membership.role)
            .join(Workspace, Workspace.id == Membership.workspace_id)
            .where(Membership.user_id == user_id, Workspace.account_id == account_id)
        )
        return role
