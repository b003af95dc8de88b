"""What the token endpoint reads of an OAuth client's row: the ORM's OAuthClient, or a ClientRecord read on the
transaction's DB-API cursor (oauth/server.py), which costs a twentieth of building an ORM instance. Both are only
read; a change to a client goes through the ORM (services.client_lifecycle)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class ClientRow(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def client_id(self) -> str: ...

    @property
    def platform(self) -> str: ...

    @property
    def workspace_id(self) -> int | None: ...

    @property
    def redirect_uris(self) -> list[str]: ...

    @property
    def secret_hash(self) -> str: ...

    @property
    def previous_secret_hash(self) -> str | None: ...

    @property
    def previous_valid_until(self) -> datetime | None: ...

    @property
    def revoked_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A client's row as read on the cursor, in the order of CLIENT_COLUMNS."""

    id: int
    client_id: str
    platform: str
    workspace_id: int | None
    redirect_uris: list[str]
    secret_hash: str
    previous_secret_hash: str | None
    previous_valid_until: datetime | None
    revoked_at: datetime | None

    def __repr__(self) -> str:
        return f"ClientRecord(client_id={self.client_id!r}, platform={self.platform!r})"


CLIENT_COLUMNS = (
    "id, client_id, platform, workspace_id, redirect_uris, secret_hash, previous_secret_hash, previous_valid_until, "
    "revoked_at"
)
