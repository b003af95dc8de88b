"""Each workspace's answer to a leaked credential: `revoke` (the default: revoked, or its connection disconnected, at
once) or `notify` (only the admins are told). Any role may read it; owners and admins change it, audited."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from token_broker.errors import InvalidInput
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, run_audited
from token_broker.services.workspaces import authorize, find_workspace
from token_broker.store.database import Database
from token_broker.store.models import LEAK_RESPONSES, Workspace

DESCRIPTIONS = {
    "revoke": "Revoke it at once (a platform's token: disconnect the platform)",
    "notify": "Only notify the admins",
}


def leak_response(database: Database, actor: Actor, account_id: str) -> str:
    with database.read() as session:
        workspace = find_workspace(session, account_id)
        authorize(session, actor, workspace, manage=False)
        return workspace.leak_response


def set_leak_response(database: Database, actor: Actor, account_id: str, choice: object) -> str:
    def work(session: Session, entry: AuditEntry) -> str:
        workspace = find_workspace(session, account_id)
        entry.workspace_id = workspace.id
        authorize(session, actor, workspace, manage=True)
        if not isinstance(choice, str) or choice not in LEAK_RESPONSES:
            raise InvalidInput("leak_response", f"leak_response must be one of {', '.join(LEAK_RESPONSES)}.")
        locked = session.scalars(select(Workspace).where(Workspace.id == workspace.id).with_for_update()).one()
        entry.target_id = locked.account_id
        entry.details = {"from": locked.leak_response, "to": choice}
        locked.leak_response = choice
        return choice

    return run_audited(database, actor, "workspace.leak_response_changed", work)
