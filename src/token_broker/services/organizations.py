"""Organizations above workspaces: create one, place workspaces in it, name its owners and admins.

An organization changes no workspace rule: keys, connections, callbacks and webhooks stay workspace-owned and
`account_id` stays the workspace key. What it adds is governance: its owners and admins read, across its workspaces,
every credential and connection (services/governance.py). Rules:
- Anyone signed in may create an organization and becomes its owner; the operator (CLI) names the owners instead.
- Placing a workspace in an organization takes an owner or admin of the organization who is also an owner of the
  workspace (the operator may do both). A workspace is in at most one organization; moving it is refused.
- Only organization owners name owners and admins, or take a role away; the last owner keeps theirs. Taking a role
  away or lowering it ends the person's dashboard sessions, as a workspace demotion does.
- An owner may name only people already in one of the organization's workspaces (or in its roles): anyone else, with
  an account or without, gets the same 404, so that the form cannot be used to learn which emails have accounts.
Every change and every refused attempt is audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from token_broker.errors import Conflict, Forbidden, InvalidInput, NotFound
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, record, run_audited
from token_broker.services.members import find_user
from token_broker.services.user_sessions import end_sessions_in
from token_broker.services.workspaces import find_workspace, new_public_id, role_in
from token_broker.store.database import Database
from token_broker.store.models import Membership, Organization, User, Workspace, utcnow
from token_broker.store.org_models import ORGANIZATION_ROLES, OrganizationRole

ORGANIZATION_ID = re.compile(r"org_[0-9A-Za-z]{1,36}")
MAX_PLACED_AT_CREATION = 50  # each is looked up and locked in the creating transaction
ROLE_CHOICES = (*ORGANIZATION_ROLES, "none")


def _not_found(organization_id: object) -> NotFound:
    return NotFound(f"No organization {str(organization_id)[:64]!r} is visible to you.")


def find_organization(session: Session, organization_id: object) -> Organization:
    if not isinstance(organization_id, str) or ORGANIZATION_ID.fullmatch(organization_id) is None:
        raise _not_found(organization_id)
    found = session.scalar(select(Organization).where(Organization.public_id == organization_id))
    if found is None:
        raise _not_found(organization_id)
    return found


def organization_role(session: Session, actor: Actor, organization: Organization) -> str | None:
    if actor.is_operator:
        return "owner"
    if actor.user_id is None:
        return None
    return session.scalar(
        select(OrganizationRole.role).where(
            OrganizationRole.organization_id == organization.id, OrganizationRole.user_id == actor.user_id
        )
    )


def authorize_organization(session: Session, actor: Actor, organization: Organization, owner: bool = False) -> str:
    """The actor's role in the organization: NotFound without one, Forbidden where an owner is needed."""
    role = organization_role(session, actor, organization)
    if role is None:
        raise _not_found(organization.public_id)
    if owner and role != "owner":
        raise Forbidden("Your role in this organization is admin; only its owners name owners and admins.")
    return role


def _name(value: object) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name or len(name) > 200 or not name.isprintable():
        raise InvalidInput("name", "name is required: 1 to 200 printable characters")
    return name


def _place(session: Session, actor: Actor, organization: Organization, account_id: object) -> Workspace:
    if not isinstance(account_id, str):
        raise InvalidInput("account_id", "account_id must be a workspace's account id (acc_...)")
    workspace = find_workspace(session, account_id)
    role = role_in(session, actor, workspace)
    if role is None:
        raise NotFound(f"No workspace {account_id!r} is visible to you.")
    if role != "owner":
        raise Forbidden(f"Your role in {account_id} is {role}; only its owners place it in an organization.")
    # Locked and read again: two organizations placing the same workspace at once must not both succeed.
    workspace = session.scalars(
        select(Workspace)
        .where(Workspace.id == workspace.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if workspace.organization_id == organization.id:
        raise Conflict(f"{account_id} is already in this organization.")
    if workspace.organization_id is not None:
        raise Conflict(f"{account_id} is in another organization already; a workspace is in one at most.")
    workspace.organization_id = organization.id
    return workspace


@dataclass(frozen=True)
class OrganizationView:
    id: str
    name: str
    role: str | None
    workspaces: list[dict[str, str]] = field(default_factory=list)
    people: list[dict[str, str]] = field(default_factory=list)
    subject: str | None = None  # the user whose role was just set (usr_...), for callers that report it

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "workspaces": self.workspaces,
            "people": self.people,
        }


def _view(session: Session, organization: Organization, role: str | None) -> OrganizationView:
    spaces = session.execute(
        select(Workspace.account_id, Workspace.name)
        .where(Workspace.organization_id == organization.id)
        .order_by(Workspace.name, Workspace.id)
    )
    people = session.execute(
        select(User.public_id, User.email, OrganizationRole.role)
        .join(OrganizationRole, OrganizationRole.user_id == User.id)
        .where(OrganizationRole.organization_id == organization.id)
        .order_by(User.email)
    )
    return OrganizationView(
        id=organization.public_id,
        name=organization.name,
        role=role,
        workspaces=[{"account_id": a, "name": n} for a, n in spaces],
        people=[{"user_id": u, "email": e, "role": r} for u, e, r in people],
    )


def create_organization(
    database: Database,
    actor: Actor,
    name: object,
    account_ids: list[Any] | None = None,
    owners: list[Any] | None = None,
) -> OrganizationView:
    """A new organization holding these workspaces. A user who creates one is its owner; the operator may name
    owners now or later (`org role`)."""
    public_id = new_public_id("org_")

    def work(session: Session, entry: AuditEntry) -> OrganizationView:
        entry.target_id = public_id
        clean = _name(name)
        if len(account_ids or []) > MAX_PLACED_AT_CREATION:
            raise InvalidInput(
                "account_ids", f"place at most {MAX_PLACED_AT_CREATION} workspaces at creation; add the rest later"
            )
        named = list(owners or [])
        if not actor.is_operator and named:
            raise InvalidInput("owners", "you become the owner of the organization you create; name others later")
        organization = Organization(public_id=public_id, name=clean, created_at=utcnow())
        session.add(organization)
        session.flush()
        people = [actor.user_id] if actor.user_id is not None else []
        for reference in named:
            user = find_user(session, str(reference)[:320]) if isinstance(reference, str) else None
            if user is None:
                raise NotFound(f"No user {str(reference)[:80]!r}.")
            people.append(user.id)
        for user_id in dict.fromkeys(people):
            session.add(
                OrganizationRole(organization_id=organization.id, user_id=user_id, role="owner", created_at=utcnow())
            )
        session.flush()
        placed = [_place(session, actor, organization, account_id) for account_id in account_ids or []]
        for workspace in placed:  # each workspace's own log says who can now see its credentials
            _record_placed(session, actor, organization, workspace)
        entry.details = {"organization": public_id, "workspaces": [workspace.account_id for workspace in placed]}
        return _view(session, organization, "owner")

    return run_audited(database, actor, "organization.created", work)


def _record_placed(session: Session, actor: Actor, organization: Organization, workspace: Workspace) -> None:
    details = {"organization": organization.public_id, "account_id": workspace.account_id}
    entry = AuditEntry(
        action="organization.workspace_added",
        workspace_id=workspace.id,
        target_id=organization.public_id,
        details=details,
    )
    record(session, actor, entry, "ok", None)


def add_workspace(database: Database, actor: Actor, organization_id: str, account_id: object) -> OrganizationView:
    def work(session: Session, entry: AuditEntry) -> OrganizationView:
        entry.target_id = str(organization_id)[:64]
        organization = find_organization(session, organization_id)
        role = authorize_organization(session, actor, organization)
        entry.details = {"organization": organization.public_id}
        workspace = _place(session, actor, organization, account_id)
        entry.workspace_id = workspace.id
        entry.details = {"organization": organization.public_id, "account_id": workspace.account_id}
        return _view(session, organization, role)

    return run_audited(database, actor, "organization.workspace_added", work)


def set_role(database: Database, actor: Actor, organization_id: str, user: object, role: object) -> OrganizationView:
    """Name a user owner or admin of the organization, or take their role away ("none")."""

    def work(session: Session, entry: AuditEntry) -> OrganizationView:
        entry.target_id = str(organization_id)[:64]
        organization = find_organization(session, organization_id)
        session.execute(select(Organization.id).where(Organization.id == organization.id).with_for_update())
        authorize_organization(session, actor, organization, owner=True)
        if role not in ROLE_CHOICES:
            raise InvalidInput("role", f"role must be one of {', '.join(ROLE_CHOICES)}")
        if not isinstance(user, str) or not user.strip() or len(user) > 320:
            raise InvalidInput("user", "name the user by their id (usr_...) or email")
        target = _nameable(session, actor, organization, user.strip())
        current = session.scalar(
            select(OrganizationRole).where(
                OrganizationRole.organization_id == organization.id, OrganizationRole.user_id == target.id
            )
        )
        before = current.role if current is not None else "none"
        entry.details = {"organization": organization.public_id, "user": target.public_id, "from": before, "to": role}
        if before == role:
            raise Conflict(f"{target.email} already has the role {role} in this organization.")
        if before == "owner":
            owners = session.scalar(
                select(func.count()).where(
                    OrganizationRole.organization_id == organization.id, OrganizationRole.role == "owner"
                )
            )
            if (owners or 0) <= 1:
                raise Conflict("This is the organization's last owner: name another owner first.")
        if current is not None and role == "none":
            session.delete(current)
        elif current is not None:
            current.role = str(role)
        else:
            session.add(
                OrganizationRole(
                    organization_id=organization.id, user_id=target.id, role=str(role), created_at=utcnow()
                )
            )
        rank = {"none": 0, "admin": 1, "owner": 2}
        if rank[str(role)] < rank[before]:
            end_sessions_in(session, target.id)
        session.flush()
        view = _view(session, organization, organization_role(session, actor, organization))
        return replace(view, subject=target.public_id)

    return run_audited(database, actor, "organization.role_changed", work)


def _nameable(session: Session, actor: Actor, organization: Organization, reference: str) -> User:
    """The user an organization owner may name: someone in one of its workspaces or already in its roles. Anyone
    else, with an account or not, gets the same answer, so that naming cannot probe which emails have accounts.
    The operator may name any user."""
    target = find_user(session, reference)
    if target is not None and not actor.is_operator:
        in_workspace = session.scalar(
            select(Membership.id)
            .join(Workspace, Workspace.id == Membership.workspace_id)
            .where(Membership.user_id == target.id, Workspace.organization_id == organization.id)
            .limit(1)
        )
        in_roles = session.scalar(
            select(OrganizationRole.id).where(
                OrganizationRole.user_id == target.id, OrganizationRole.organization_id == organization.id
            )
        )
        if in_workspace is None and in_roles is None:
            target = None
    if target is None:
        raise NotFound(
            f"{reference[:80]!r} is not a member of any of this organization's workspaces: "
            "only they, or its present owners and admins, can be named."
        )
    return target


def show_organization(database: Database, actor: Actor, organization_id: str) -> OrganizationView:
    with database.read() as session:
        organization = find_organization(session, organization_id)
        role = authorize_organization(session, actor, organization)
        return _view(session, organization, role)


@dataclass(frozen=True)
class OrganizationChoice:
    id: str
    name: str
    governs: bool


def organizations_of(database: Database, actor: Actor) -> list[OrganizationChoice]:
    """The organizations a user governs or has a workspace in (every one, for the operator), by name."""
    with database.read() as session:
        if actor.is_operator:
            rows = session.execute(select(Organization.public_id, Organization.name).order_by(Organization.name))
            return [OrganizationChoice(id=i, name=n, governs=True) for i, n in rows]
        governed = set(
            session.scalars(
                select(Organization.public_id)
                .join(OrganizationRole, OrganizationRole.organization_id == Organization.id)
                .where(OrganizationRole.user_id == actor.user_id)
            )
        )
        through_workspaces = set(
            session.scalars(
                select(Organization.public_id)
                .join(Workspace, Workspace.organization_id == Organization.id)
                .join(Membership, Membership.workspace_id == Workspace.id)
                .where(Membership.user_id == actor.user_id)
            )
        )
        wanted = governed | through_workspaces
        if not wanted:
            return []
        rows = session.execute(
            select(Organization.public_id, Organization.name)
            .where(Organization.public_id.in_(sorted(wanted)))
            .order_by(Organization.name, Organization.id)
        )
        return [OrganizationChoice(id=i, name=n, governs=i in governed) for i, n in rows]
