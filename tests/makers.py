"""Making credentials in a test store, through the services where they exist."""

from __future__ import annotations

from sqlalchemy import select

from tests.support import Team
from token_broker.credentials import SecretHasher
from token_broker.services import clients, keys
from token_broker.services.actors import Actor
from token_broker.services.connections import open_connection
from token_broker.services.keys import KeyRequest
from token_broker.services.tokens import TokenLifetimes
from token_broker.store.database import Database
from token_broker.store.models import Workspace
from token_broker.store.oauth_models import OAuthClient


class Keys:
    """Makes credentials in the live server's store."""

    def __init__(self, database: Database, hasher: SecretHasher, team: Team) -> None:
        self.database, self.hasher, self.team = database, hasher, team

    def workspace_key(self, account_id: str | None = None, **request: object) -> keys.IssuedKey:
        request.setdefault("name", "test key")
        return keys.create_key(
            self.database, self.hasher, self.team.admin if account_id is None else self.team.outsider,
            account_id or self.team.account_id, KeyRequest(**request),  # type: ignore[arg-type]
        )  # fmt: skip

    def partner_token(self, platform: str = "zapier", expires_in: int = 3600, scopes: list[str] | None = None) -> str:
        """A partner install token from a connection opened the way a connect flow opens one."""
        lifetimes = TokenLifetimes.of({platform: expires_in}, 90, "test-secret-key")
        if platform == "n8n":
            made = clients.register_client(self.database, self.team.admin, platform,
                                           ["https://n8n.test/rest/oauth2-credential/callback"],
                                           account_id=self.team.account_id)  # fmt: skip
        else:
            made = clients.register_client(self.database, Actor.operator(), platform, [f"https://{platform}.test/cb"])
        with self.database.write() as session:
            client = session.scalars(select(OAuthClient).where(OAuthClient.client_id == made.client_id)).one()
            workspace = session.scalars(select(Workspace).where(Workspace.account_id == self.team.account_id)).one()
            granted = scopes or ["links:read", "links:write"]
            issued = open_connection(
                session, client, workspace, self.team.admin.label, granted, expires_in, lifetimes.refresh
            )
        return issued.access_token
