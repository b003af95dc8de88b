"""The governance view: across an organization's workspaces, every credential (workspace keys and partner install
tokens) and every platform connection, for the organization's owners and admins. Read-only: each row names its
workspace, whose own owners and admins act on it in that workspace's panel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from token_broker.errors import InvalidInput
from token_broker.scopes import PLATFORMS
from token_broker.services.actors import Actor
from token_broker.services.connections import ConnectionView
from token_broker.services.keys import CredentialView
from token_broker.services.organizations import authorize_organization, find_organization
from token_broker.store.database import Database
from token_broker.store.models import Credential, User, Workspace, utcnow
from token_broker.store.oauth_models import Connection, OAuthClient

UNUSED_DAYS = 90
USAGE_FILTERS = ("never_used", "unused_90_days")
GOVERNED_CREDENTIAL_FIELDS = (
    "id",
    "account_id",
    "workspace",
    "name",
    "kind",
    "platform",
    "status",
    "created_by",
    "created_at",
    "last_used_at",
    "expires_at",
    "scopes",
    "allowed_ips",
)
GOVERNED_CONNECTION_FIELDS = (
    "id",
    "account_id",
    "workspace",
    "platform",
    "status",
    "created_by",
    "created_at",
    "last_used_at",
    "scopes",
    "credential_id",
)


@dataclass(frozen=True)
class GovernanceFilter:
    usage: str | None = None  # never_used | unused_90_days
    no_expiry: bool = False
    no_ip_allow_list: bool = False
    platform: str | None = None  # connections of this platform only; the other filters are for credentials

    @classmethod
    def read(cls, query: Any) -> GovernanceFilter:
        """From query parameters: usage=never_used|unused_90_days, no_expiry=1, no_ip_allow_list=1, platform=P."""
        usage = query.get("usage") or None
        if usage is not None and usage not in USAGE_FILTERS:
            raise InvalidInput("usage", f"usage must be one of {', '.join(USAGE_FILTERS)}")
        platform = query.get("platform") or None
        if platform is not None and platform not in PLATFORMS:
            raise InvalidInput("platform", f"platform must be one of {', '.join(PLATFORMS)}")
        flags = {}
        for name in ("no_expiry", "no_ip_allow_list"):
            value = query.get(name) or ""
            if value not in ("", "1", "true", "on"):
                raise InvalidInput(name, f"{name} is a flag: 1 or leave it out")
            flags[name] = bool(value)
        return cls(usage=usage, platform=platform, **flags)

    def as_query(self) -> dict[str, str]:
        found = {"usage": self.usage or "", "platform": self.platform or ""}
        found.update(
            {"no_expiry": "1" if self.no_expiry else "", "no_ip_allow_list": "1" if self.no_ip_allow_list else ""}
        )
        return {name: value for name, value in found.items() if value}


@dataclass(frozen=True)
class GovernedCredential:
    """A credential as the workspace's panel lists it, with its workspace's name."""

    credential: CredentialView
    workspace: str

    def to_json(self) -> dict[str, Any]:
        shown = {**self.credential.to_json(), "workspace": self.workspace}
        return {name: shown[name] for name in GOVERNED_CREDENTIAL_FIELDS}


@dataclass(frozen=True)
class GovernedConnection:
    """A connection as the workspace's panel lists it, with its workspace's account id and name."""

    connection: ConnectionView
    account_id: str
    workspace: str

    def to_json(self) -> dict[str, Any]:
        shown = {**self.connection.to_json(), "account_id": self.account_id, "workspace": self.workspace}
        return {name: shown[name] for name in GOVERNED_CONNECTION_FIELDS}


@dataclass(frozen=True)
class GovernanceReport:
    organization_id: str
    organization: str
    credentials: list[GovernedCredential]
    connections: list[GovernedConnection]
    names: dict[str, str]

    def who(self, label: str) -> str:
        return self.names.get(label, label)

    def to_json(self) -> dict[str, Any]:
        return {
            "organization": {"id": self.organization_id, "name": self.organization},
            "credentials": [item.to_json() for item in self.credentials],
            "connections": [item.to_json() for item in self.connections],
        }


def governance_report(
    database: Database, actor: Actor, organization_id: str, where: GovernanceFilter | None = None
) -> GovernanceReport:
    where = where or GovernanceFilter()
    now = utcnow()
    with database.read() as session:
        organization = find_organization(session, organization_id)
        authorize_organization(session, actor, organization)
        query = (
            select(Credential, Workspace.account_id, Workspace.name)
            .join(Workspace, Workspace.id == Credential.workspace_id)
            .where(Workspace.organization_id == organization.id)
        )
        if where.usage == "never_used":
            query = query.where(Credential.last_used_at.is_(None))
        elif where.usage == "unused_90_days":
            cutoff = now - timedelta(days=UNUSED_DAYS)
            query = query.where((Credential.last_used_at.is_(None)) | (Credential.last_used_at < cutoff))
        if where.no_expiry:
            query = query.where(Credential.expires_at.is_(None))
        rows = session.execute(query.order_by(Workspace.name, Credential.created_at.desc(), Credential.id.desc()))
        found = [
            GovernedCredential(CredentialView.of(row, account_id, now), workspace)
            for row, account_id, workspace in rows
        ]
        if where.no_ip_allow_list:
            found = [item for item in found if not item.credential.allowed_ips]
        links = (
            select(
                Connection,
                OAuthClient.client_id,
                Credential.public_id,
                Credential.last_used_at,
                Workspace.account_id,
                Workspace.name,
            )
            .join(Workspace, Workspace.id == Connection.workspace_id)
            .join(OAuthClient, OAuthClient.id == Connection.client_id)
            .outerjoin(Credential, Credential.connection_id == Connection.id)
            .where(Workspace.organization_id == organization.id)
        )
        if where.platform is not None:
            links = links.where(Connection.platform == where.platform)
        connections = [
            GovernedConnection(ConnectionView.of(connection, client, credential_id, last_used), account_id, workspace)
            for connection, client, credential_id, last_used, account_id, workspace in session.execute(
                links.order_by(Workspace.name, Connection.created_at.desc(), Connection.id.desc())
            )
        ]
        labels = {item.credential.created_by for item in found} | {item.connection.created_by for item in connections}
        users = sorted(label for label in labels if label.startswith("usr_"))
        rows = session.execute(select(User.public_id, User.email).where(User.public_id.in_(users)))
        names = {row.public_id: row.email for row in rows}
    return GovernanceReport(
        organization_id=organization.public_id,
        organization=organization.name,
        credentials=found,
        connections=connections,
        names=names,
    )
