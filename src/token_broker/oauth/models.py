"""What authlib needs to know about our clients and codes, wrapped around our own rows."""

from __future__ import annotations

from dataclasses import dataclass

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin

from token_broker.scopes import Manifest
from token_broker.services.client_rows import ClientRow
from token_broker.services.clients import secret_matches
from token_broker.store.oauth_models import AuthorizationCode

AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class BrokerClient(ClientMixin):  # type: ignore[misc]
    """A platform's client. It may be granted at most its platform's manifest scopes, and uses exact redirect URIs."""

    def __init__(self, row: ClientRow, manifest: Manifest | None) -> None:
        self.row = row
        self.manifest = manifest

    @property
    def revoked(self) -> bool:
        return self.row.revoked_at is not None

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # the request must name its redirect URI; there is no default to fall back on

    def get_allowed_scope(self, scope: str | None) -> str | None:
        allowed = self.manifest.scopes if self.manifest is not None else ()
        if not scope:
            return " ".join(allowed) if allowed else None
        wanted = scope.split()
        if not set(wanted) <= set(allowed):
            return None
        return " ".join(s for s in allowed if s in wanted)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # A revoked client still authenticates at the token endpoint, where its grant is then refused with
        # invalid_grant; at revocation and introspection it is refused as invalid_client.
        return method in AUTH_METHODS and (endpoint == "token" or not self.revoked)

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass(frozen=True)
class Approval:
    """Who approved a consent request, and for which workspace: authlib's "user" for the code it saves."""

    user_id: int
    label: str
    workspace_id: int


class BrokerCode(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str | None:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope
