"""The people of a workspace: removing a member, changing a role, and passwords.

Rules (owners and admins act; members and viewers may only look):
- Only an owner may make someone an owner, or remove or demote an owner; an admin manages admins, members and viewers.
  The operator (CLI) acts as an owner.
- The last owner of a workspace can be neither removed nor demoted (the workspace would have nobody to manage it).
- Removing or demoting someone ends all their dashboard sessions at once (their session generation is raised in the
  same transaction). What they made stays: keys and connections belong to the workspace and keep working.
- A password change ends the user's other sessions; the operator's reset ends all of them.
Every change and every refused attempt is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from token_broker.credentials import SecretHasher
from token_broker.errors import Conflict, Forbidden, InvalidInput, NotFound, WrongPassword
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, run_audited
from token_broker.services.user_sessions import end_sessions_in
from token_broker.services.workspaces import authorize, find_workspace, validate_password
from token_broker.store.database import Database
from token_broker.store.models import ROLES, Membership, User, Workspace
from token_broker.times import rfc3339

RANK = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}


@dataclass(frozen=True)
class MemberView:
    user_id: str
    email: str
    role: str
    created_at: datetime  # when they joined the workspace

    def to_json(self) -> dict[str, str | None]:
        return {"user_id": self.user_id, "email": self.email, "role": self.role, "created_at": rfc3339(self.created_at)}


def _user_reference(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 320:
        raise InvalidInput("user", "name the user by their id (usr_...) or email")
    return value.strip()


def find_user(session: Session, reference: str) -> User | None:
    """A user by public id (usr_...) or email."""
    if reference.startswith("usr_"):
        return session.scalar(select(User).where(User.public_id == reference))
    return session.scalar(select(User).where(User.email == reference.lower()))


def list_members(database: Database, actor: Actor, account_id: str) -> list[MemberView]:
    with database.read() as session:
        workspace = find_workspace(session, account_id)
        authorize(session, actor, workspace, manage=False)
        rows = session.execute(
            select(User.public_id, User.email, Membership.role, Membership.created_at)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.workspace_id == workspace.id)
            .order_by(User.email)
        )
        return [MemberView(user_id=u, email=e, role=r, created_at=c) for u, e, r, c in rows]


def former_members(database: Database, labels: set[str]) -> dict[str, str]:
    """Emails of the users among these actor labels (labels of people no longer in the workspace, as the caller
    chose them), so that what they made can be shown as made by a former member."""
    wanted = sorted(label for label in labels if label.startswith("usr_"))
    if not wanted:
        return {}
    with database.read() as session:
        rows = session.execute(select(User.public_id, User.email).where(User.public_id.in_(wanted)))
        return {row.public_id: row.email for row in rows}


def _target(session: Session, workspace: Workspace, reference: str, entry: AuditEntry) -> tuple[User, Membership]:
    user = find_user(session, reference)
    member = None
    if user is not None:
        entry.target_id = user.public_id
        member = session.scalar(
            select(Membership).where(Membership.user_id == user.id, Membership.workspace_id == workspace.id)
        )
    if user is None or member is None:
        raise NotFound(f"{reference[:80]!r} is not a member of {workspace.account_id}.")
    return user, member


def _workspace_to_change(session: Session, actor: Actor, account_id: str, entry: AuditEntry) -> Workspace:
    """The workspace whose people change, locked: changes to one workspace's people are serialised, so two owners
    cannot each remove the other (PostgreSQL; SQLite writers are serialised already). The actor's role is read after
    the lock, so a change that demoted them a moment before is seen."""
    workspace = find_workspace(session, account_id)
    entry.workspace_id = workspace.id
    session.execute(select(Workspace.id).where(Workspace.id == workspace.id).with_for_update())
    authorize(session, actor, workspace, manage=True)
    return workspace


def _check_may_change(
    session: Session, actor: Actor, workspace: Workspace, member: Membership, new: str | None
) -> None:
    """May the actor remove (new None) this member, or give them the role `new`?"""
    acting = authorize(session, actor, workspace, manage=True)
    if acting != "owner" and (member.role == "owner" or new == "owner"):
        raise Forbidden("Your role in this workspace is admin; only an owner can remove, demote or appoint owners.")
    if member.role == "owner" and new != "owner":
        owners = session.scalar(
            select(func.count()).where(Membership.workspace_id == workspace.id, Membership.role == "owner")
        )
        if (owners or 0) <= 1:
            what = "removed" if new is None else "demoted"
            raise Conflict("This is the workspace's last owner, who cannot be " + what + ": make another owner first.")


def remove_member(database: Database, actor: Actor, account_id: str, user: object) -> MemberView:
    """Take the user out of the workspace and end their dashboard sessions; what they made keeps working."""
    reference = _user_reference(user)

    def work(session: Session, entry: AuditEntry) -> MemberView:
        workspace = _workspace_to_change(session, actor, account_id, entry)
        target, member = _target(session, workspace, reference, entry)
        entry.details = {"role": member.role}
        _check_may_change(session, actor, workspace, member, None)
        session.delete(member)
        end_sessions_in(session, target.id)
        return MemberView(user_id=target.public_id, email=target.email, role=member.role, created_at=member.created_at)

    return run_audited(database, actor, "membership.removed", work)


def change_role(database: Database, actor: Actor, account_id: str, user: object, role: object) -> MemberView:
    """Give a member another role; a demotion ends their dashboard sessions."""
    reference = _user_reference(user)

    def work(session: Session, entry: AuditEntry) -> MemberView:
        workspace = _workspace_to_change(session, actor, account_id, entry)
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidInput("role", f"role must be one of {', '.join(ROLES)}")
        target, member = _target(session, workspace, reference, entry)
        entry.details = {"from": member.role, "to": role}
        if member.role == role:
            raise Conflict(f"{target.email} already has the role {role} in {account_id}.")
        _check_may_change(session, actor, workspace, member, role)
        demoted = RANK[role] < RANK[member.role]
        member.role = role
        if demoted:
            end_sessions_in(session, target.id)
        return MemberView(user_id=target.public_id, email=target.email, role=role, created_at=member.created_at)

    return run_audited(database, actor, "membership.role_changed", work)


def change_password(database: Database, hasher: SecretHasher, actor: Actor, current: object, new: object) -> int:
    """A signed-in user's own password, given their current one. Ends their other sessions: the new session
    generation is returned for the caller to keep its own session alive."""
    if actor.user_id is None:
        raise Forbidden("Only a signed-in user changes their own password; the operator uses `user set-password`.")
    user_id = actor.user_id
    with database.read() as session:
        user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    current_ok = isinstance(current, str) and len(current) <= 1024 and hasher.verify(user.password_hash, current)
    new_hash = None
    if current_ok and isinstance(new, str) and not isinstance(_password_problem(new), InvalidInput):
        new_hash = hasher.hash(new)

    def work(session: Session, entry: AuditEntry) -> int:
        entry.target_id = user.public_id
        if not current_ok:
            raise WrongPassword("The current password given is not yours.")
        problem = _password_problem(new)
        if problem is not None:
            raise problem
        row = session.get(User, user_id)
        if row is None or row.password_hash != user.password_hash or new_hash is None:
            raise Conflict("Your password changed meanwhile; sign in again.")
        row.password_hash = new_hash
        return end_sessions_in(session, user_id)

    return run_audited(database, actor, "user.password_changed", work)


def _password_problem(value: object) -> InvalidInput | None:
    if not isinstance(value, str):
        return InvalidInput("new_password", "give the new password")
    try:
        validate_password(value)
    except InvalidInput as error:
        return error
    return None


def reset_password(database: Database, hasher: SecretHasher, actor: Actor, user: object, new: str) -> str:
    """The operator sets a user's password (forgotten or compromised); ends all their sessions."""
    reference = _user_reference(user)
    validate_password(new)
    new_hash = hasher.hash(new)

    def work(session: Session, entry: AuditEntry) -> str:
        if not actor.is_operator:
            raise Forbidden("Only the operator resets passwords.")
        target = find_user(session, reference)
        if target is None:
            raise NotFound(f"No user {reference[:80]!r}.")
        entry.target_id = target.public_id
        target.password_hash = new_hash
        end_sessions_in(session, target.id)
        return target.public_id

    return run_audited(database, actor, "user.password_reset", work)
