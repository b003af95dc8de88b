"""Workspaces, users and their roles, and the one rule every other service asks: may this actor act here?"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from token_broker.credentials import BASE62, SecretHasher
from token_broker.errors import Conflict, Forbidden, InvalidInput, NotFound
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, run_audited
from token_broker.store.database import Database
from token_broker.store.models import ROLES, Membership, Organization, User, Workspace, utcnow
from token_broker.store.org_models import OrganizationRole

MANAGING_ROLES = ("owner", "admin")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def new_public_id(prefix: str, length: int = 16) -> str:
    return prefix + "".join(secrets.choice(BASE62) for _ in range(length))


def find_workspace(session: Session, account_id: str) -> Workspace:
    workspace = session.scalar(select(Workspace).where(Workspace.account_id == account_id))
    if workspace is None:
        raise NotFound(f"No workspace {account_id!r} is visible to you.")
    return workspace


def role_in(session: Session, actor: Actor, workspace: Workspace) -> str | None:
    if actor.is_operator:
        return "owner"
    if actor.user_id is None:
        return None
    return session.scalar(
        select(Membership.role).where(Membership.user_id == actor.user_id, Membership.workspace_id == workspace.id)
    )


def authorize(session: Session, actor: Actor, workspace: Workspace, manage: bool) -> str:
    """The actor's role in the workspace; NotFound where it has none, Forbidden where it may only look."""
    role = role_in(session, actor, workspace)
    if role is None:
        raise NotFound(f"No workspace {workspace.account_id!r} is visible to you.")
    if manage and role not in MANAGING_ROLES:
        raise Forbidden(
            f"Your role in this workspace is {role}; only owners and admins can change keys and connections."
        )
    return role


def workspace_to_manage(
    session: Session, actor: Actor, entry: AuditEntry, workspace_id: int, account_id: str | None, not_found: NotFound
) -> Workspace:
    """The workspace a row (a key, a connection, a client) belongs to, once the actor may manage it there. A row of
    another workspace than the one the caller's path names (`account_id`) is `not_found`, like one the actor cannot
    see at all; the audit entry names the workspace before the role check, so a refused attempt is logged in it."""
    workspace = session.get_one(Workspace, workspace_id)
    if account_id is not None and workspace.account_id != account_id:
        raise not_found
    entry.workspace_id = workspace.id
    authorize(session, actor, workspace, manage=True)
    return workspace


def create_workspace(database: Database, actor: Actor, name: str, organization_id: str | None = None) -> str:
    """A new workspace, placed at once in the organization given (which the actor must own or administer)."""
    name = name.strip() if isinstance(name, str) else ""
    account_id = new_public_id("acc_")

    def work(session: Session, entry: AuditEntry) -> str:
        entry.target_id = account_id
        if not name or len(name) > 200:
            raise InvalidInput("name", "name is required and must be at most 200 characters")
        organization = None if organization_id is None else _organization_for(session, actor, organization_id)
        if organization is not None:
            entry.details = {"organization": organization.public_id}
        workspace = Workspace(
            account_id=account_id,
            name=name,
            created_at=utcnow(),
            organization_id=None if organization is None else organization.id,
        )
        session.add(workspace)
        session.flush()
        entry.workspace_id = workspace.id
        return account_id

    return run_audited(database, actor, "workspace.created", work)


def _organization_for(session: Session, actor: Actor, organization_id: str) -> Organization:
    organization = session.scalar(select(Organization).where(Organization.public_id == organization_id[:64]))
    role = None
    if organization is not None and actor.is_operator:
        role = "owner"
    elif organization is not None and actor.user_id is not None:
        role = session.scalar(
            select(OrganizationRole.role).where(
                OrganizationRole.organization_id == organization.id, OrganizationRole.user_id == actor.user_id
            )
        )
    if organization is None or role is None:
        raise NotFound(f"No organization {organization_id[:64]!r} is visible to you.")
    return organization


def validate_password(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            "password", f"the password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long"
        )
    return password


@dataclass(frozen=True)
class UserAdded:
    user_id: str
    created: bool


def add_user(
    database: Database, hasher: SecretHasher, actor: Actor, email: str, password: str, account_id: str, role: str
) -> UserAdded:
    """Make sure a person with this email and password is in the workspace with this role.

    A new email makes a new user. An existing one gets the membership only when the password matches theirs, so
    that the command can add a person to a second workspace without becoming a way to reset passwords.
    """
    email = email.strip().lower()
    if not _EMAIL.fullmatch(email) or len(email) > 320:
        raise InvalidInput("email", f"{email!r} is not an email address")
    if role not in ROLES:
        raise InvalidInput("role", f"role must be one of {', '.join(ROLES)}")
    validate_password(password)
    with database.read() as session:
        existing = session.scalar(select(User).where(User.email == email))
    if existing is None:
        new_hash, password_ok = hasher.hash(password), True
    else:
        new_hash, password_ok = None, hasher.verify(existing.password_hash, password)

    def work(session: Session, entry: AuditEntry) -> UserAdded:
        workspace = find_workspace(session, account_id)
        entry.workspace_id = workspace.id
        entry.details = {"role": role}
        authorize(session, actor, workspace, manage=True)
        user = session.scalar(select(User).where(User.email == email))
        created = user is None
        if user is None:
            if new_hash is None:
                raise Conflict("That user was removed while being added; try again.")
            user = User(public_id=new_public_id("usr_"), email=email, password_hash=new_hash, created_at=utcnow())
            session.add(user)
            session.flush()
        elif existing is None or existing.id != user.id:
            raise Conflict("That user was created by someone else while being added; try again.")
        elif not password_ok:
            raise Conflict(f"A user with the email {email} exists and the password given is not theirs.")
        entry.target_id = user.public_id
        member = session.scalar(
            select(Membership).where(Membership.user_id == user.id, Membership.workspace_id == workspace.id)
        )
        if member is not None:
            raise Conflict(f"{email} is already a member of {account_id} with the role {member.role}.")
        session.add(Membership(user_id=user.id, workspace_id=workspace.id, role=role, created_at=utcnow()))
        return UserAdded(user_id=user.public_id, created=created)

    return run_audited(database, actor, "membership.created", work)


@dataclass(frozen=True)
class SignedInUser:
    id: int
    public_id: str
    email: str
    generation: int = 1


def authenticate(database: Database, hasher: SecretHasher, email: str, password: str) -> SignedInUser | None:
    """The user with this email and password, or None; an unknown email costs the same as a wrong password."""
    with database.read() as session:
        user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        hasher.verify_nothing()
        return None
    if not hasher.verify(user.password_hash, password):
        return None
    return _signed_in(user)


@dataclass(frozen=True)
class MembershipView:
    account_id: str
    name: str
    role: str

    def to_json(self) -> dict[str, str]:
        return {"account_id": self.account_id, "name": self.name, "role": self.role}


def memberships_of(database: Database, user_id: int) -> list[MembershipView]:
    """The workspaces a user has a role in, oldest membership first."""
    with database.read() as session:
        rows = session.execute(
            select(Workspace.account_id, Workspace.name, Membership.role)
            .join(Membership, Membership.workspace_id == Workspace.id)
            .where(Membership.user_id == user_id)
            .order_by(Membership.id)
        )
        return [MembershipView(account_id=a, name=n, role=r) for a, n, r in rows]


def _signed_in(user: User) -> SignedInUser:
    return SignedInUser(id=user.id, public_id=user.public_id, email=user.email, generation=user.session_generation)


def find_user(database: Database, user_id: int) -> SignedInUser | None:
    with database.read() as session:
        user = session.get(User, user_id)
    return None if user is None else _signed_in(user)
