"""OAuth clients: one operator-registered client per platform for Zapier and Make, one per n8n instance (registered
by a workspace admin with that instance's callback URL). Secrets are shown once and stored as hashes."""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from token_broker import credentials
from token_broker.errors import Forbidden, InvalidInput
from token_broker.scopes import PLATFORMS
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, run_audited
from token_broker.services.client_rows import ClientRow
from token_broker.services.workspaces import authorize, find_workspace
from token_broker.store.database import Database
from token_broker.store.models import utcnow
from token_broker.store.oauth_models import OAuthClient

CLIENT_SECRET_LENGTH = 40
N8N_CALLBACK_PATH = "/rest/oauth2-credential/callback"
MAX_REDIRECT_URIS = 5


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    client_secret: str
    platform: str
    redirect_uris: tuple[str, ...]

    def __repr__(self) -> str:
        return f"RegisteredClient(client_id={self.client_id!r}, platform={self.platform!r})"

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "platform": self.platform,
            "redirect_uris": list(self.redirect_uris),
        }


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_redirect_uri(value: object, platform: str) -> str:
    """An exact callback URL: https (or http on a loopback host, for local n8n), no fragment, printable ASCII."""
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise InvalidInput("redirect_uri", "redirect_uri is required: the platform's OAuth callback URL")
    if not value.isascii() or not value.isprintable() or any(ch in value for ch in ' "\\<>'):
        raise InvalidInput("redirect_uri", "redirect_uri must be a plain ASCII URL without spaces or quotes")
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise InvalidInput("redirect_uri", f"redirect_uri {value!r} is not a URL") from None
    if parts.fragment or "#" in value:
        raise InvalidInput("redirect_uri", "redirect_uri must not have a fragment (#...)")
    if not host:
        raise InvalidInput("redirect_uri", "redirect_uri must be an absolute URL with a host")
    if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(host)):
        raise InvalidInput("redirect_uri", "redirect_uri must use https (http is allowed only for localhost)")
    if platform == "n8n" and not parts.path.endswith(N8N_CALLBACK_PATH):  # n8n may be served under a path prefix
        raise InvalidInput(
            "redirect_uri", f"an n8n callback URL ends in {N8N_CALLBACK_PATH}, as n8n shows in its credential form"
        )
    return value


def register_client(
    database: Database,
    actor: Actor,
    platform: str,
    redirect_uris: list[str],
    account_id: str | None = None,
) -> RegisteredClient:
    """Register a client. Zapier and Make: the operator only, for every workspace. n8n: an owner or admin of one
    workspace, for that workspace only."""
    secret = credentials.random_base62(CLIENT_SECRET_LENGTH)
    client_id = f"{platform}_{credentials.random_base62(20)}" if platform in PLATFORMS else ""

    def work(session: Session, entry: AuditEntry) -> RegisteredClient:
        entry.target_id = client_id or None
        workspace_id = None
        if account_id is not None:
            workspace = find_workspace(session, account_id)
            entry.workspace_id = workspace_id = workspace.id
            authorize(session, actor, workspace, manage=True)
        if platform not in PLATFORMS:
            raise InvalidInput("platform", f"platform must be one of {', '.join(PLATFORMS)}")
        if platform == "n8n" and account_id is None:
            raise InvalidInput("workspace", "an n8n client belongs to one workspace: name it")
        if platform != "n8n" and account_id is not None:
            raise InvalidInput("workspace", f"the {platform} client serves every workspace: do not name one")
        if platform != "n8n" and not actor.is_operator:
            raise Forbidden(f"Only the operator registers the {platform} client.")
        if not redirect_uris or len(redirect_uris) > MAX_REDIRECT_URIS:
            raise InvalidInput("redirect_uri", f"give 1 to {MAX_REDIRECT_URIS} redirect URIs")
        uris = list(dict.fromkeys(validate_redirect_uri(uri, platform) for uri in redirect_uris))
        session.add(
            OAuthClient(
                client_id=client_id,
                secret_hash=credentials.fast_hash(secret),
                platform=platform,
                workspace_id=workspace_id,
                redirect_uris=uris,
                created_at=utcnow(),
                created_by=actor.label,
            )
        )
        entry.details = {"platform": platform, "redirect_uris": uris}
        return RegisteredClient(client_id=client_id, client_secret=secret, platform=platform, redirect_uris=tuple(uris))

    return run_audited(database, actor, "client.created", work)


def secret_matches(client: ClientRow, presented: str, now: datetime | None = None) -> bool:
    """Whether a presented client secret is the client's current one, or its previous one within the grace window
    of the last rotation. Both comparisons always run and are constant-time; only hashes are ever compared."""
    presented_hash = credentials.fast_hash(presented)
    current = hmac.compare_digest(client.secret_hash, presented_hash)
    previous_hash, valid_until = client.previous_secret_hash, client.previous_valid_until
    previous = hmac.compare_digest(previous_hash or "", presented_hash) and previous_hash is not None
    in_grace = valid_until is not None and valid_until > (now or utcnow())
    return current or (previous and in_grace)


def serves_workspace(client: ClientRow, workspace_id: int) -> bool:
    """Whether the client may yield tokens for the workspace: a workspace's own (n8n) client serves that workspace
    alone; a platform-wide client (Zapier, Make) serves any. Checked at consent, code and token exchange alike."""
    return client.workspace_id is None or client.workspace_id == workspace_id
