"""Making credentials in a test store, through the services where they exist."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.support import Team
from token_broker import credentials
from token_broker.credentials import CredentialKind, SecretHasher
from token_broker.services import keys
from token_broker.services.keys import KeyRequest
from token_broker.store.database import Database
from token_broker.store.models import Credential, Workspace, utcnow


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
        """A partner access token row, as the connect flow (a later issue) will make them."""
        made = credentials.generate(CredentialKind.PARTNER_ACCESS)
        now = utcnow()
        with self.database.write() as session:
            workspace = session.scalars(select(Workspace).where(Workspace.account_id == self.team.account_id)).one()
            session.add(
                Credential(
                    public_id=made.public_id, workspace_id=workspace.id, kind="pat", platform=platform,
                    name=f"{platform} connection", secret_hash=self.hasher.hash(made.plaintext), status="active",
                    scopes=scopes if scopes is not None else ["links:read", "links:write"], allowed_ips=[],
                    rate_limits=["60/minute", "5000/hour"], expires_at=now + timedelta(seconds=expires_in),
                    hint=credentials.hint(made), created_at=now, created_by="connect", version=1,
                )
            )  # fmt: skip
        return made.plaintext
