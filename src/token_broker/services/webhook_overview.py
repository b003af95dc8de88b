"""A workspace's hooks as the dashboard shows them to any of its members: whose each hook is, where it sends (the
target's origin only: partners often put a token in the path), its status, and its latest delivery attempts (read
with `services.webhook_subscriptions.hook_log`). Deleted hooks are not shown. Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from token_broker.services import webhook_subscriptions
from token_broker.services.actors import Actor
from token_broker.services.webhook_subscriptions import AttemptView, HookView
from token_broker.services.workspaces import authorize, find_workspace
from token_broker.store.database import Database
from token_broker.store.hook_models import Hook
from token_broker.store.models import Credential
from token_broker.store.oauth_models import Connection
from token_broker.times import rfc3339

MAX_HOOKS_SHOWN = 50
ATTEMPTS_SHOWN = 5


@dataclass(frozen=True)
class WorkspaceHook:
    hook: HookView
    target_origin: str
    owner_name: str
    owner_platform: str | None  # the platform of the connection that owns it; None for a workspace API key
    owner_id: str  # the connection's id, or the key's
    recent: list[AttemptView]
    credential_id: str = ""  # the owning credential (a key, or a connection's partner install token)
    connection_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As the admin JSON API lists it: never a secret, never the full target URL (only its host)."""
        return {
            "id": self.hook.id,
            "event": self.hook.event,
            "target_host": target_host(self.hook.target_url),
            "status": self.hook.status,
            "owner": {"credential_id": self.credential_id, "connection_id": self.connection_id},
            "created_at": rfc3339(self.hook.created_at),
        }


def target_host(url: str) -> str | None:
    """The host of a target URL (IPv6 without brackets), or None when it cannot be read."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def target_origin(url: str) -> str:
    """scheme://host[:port] of a target URL, without its path, query or any user information."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unreadable URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def hooks_of(database: Database, actor: Actor, account_id: str) -> list[WorkspaceHook]:
    """The workspace's hooks, newest first (at most MAX_HOOKS_SHOWN), each with its latest delivery attempts."""
    with database.read() as session:
        workspace = find_workspace(session, account_id)
        authorize(session, actor, workspace, manage=False)
        rows = session.execute(
            select(Hook, Credential.name, Credential.public_id, Connection.public_id, Connection.platform)
            .join(Credential, Credential.id == Hook.credential_id)
            .outerjoin(Connection, Connection.id == Hook.connection_id)
            .where(Hook.workspace_id == workspace.id, Hook.status != "deleted")
            .order_by(Hook.id.desc())
            .limit(MAX_HOOKS_SHOWN)
        ).all()
        workspace_id = workspace.id
    return [
        WorkspaceHook(
            hook=HookView.of(hook),
            target_origin=target_origin(hook.target_url),
            owner_name=credential_name,
            owner_platform=platform,
            owner_id=connection_id or credential_id,
            recent=webhook_subscriptions.hook_log(database, workspace_id, hook.public_id, limit=ATTEMPTS_SHOWN),
            credential_id=credential_id,
            connection_id=connection_id,
        )
        for hook, credential_name, credential_id, connection_id, platform in rows
    ]
