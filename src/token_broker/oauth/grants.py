"""The grants: authorization code (with PKCE, S256 only) and refresh token. authlib validates each request and
authenticates the client; the services decide and issue."""

from __future__ import annotations

import re
import secrets
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from sqlalchemy import select
from sqlalchemy.orm import Session

from token_broker.errors import InvalidScope
from token_broker.oauth.models import AUTH_METHODS, Approval, BrokerClient, BrokerCode
from token_broker.oauth.server import GeneralPathNeeded, current_session, current_transaction
from token_broker.oauth.token_audit import code_replay_event, refresh_event, rotated_event
from token_broker.services import refresh, tokens
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, record
from token_broker.services.client_lifecycle import hold_active
from token_broker.services.clients import serves_workspace
from token_broker.services.tokens import CodeReplay, Refused
from token_broker.store.models import User

S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
TokenResponse = tuple[int, dict[str, Any], list[tuple[str, str]]]


def _check_client_id_matches(request: Any, client: BrokerClient) -> None:
    """A body naming another client than the one that authenticated is refused (authlib would ignore it)."""
    named = request.form.get("client_id")
    if named is not None and named != client.get_client_id():
        # RFC 6749 5.2: 401 when the client authenticated with the Authorization header, 400 otherwise.
        used_basic = request.headers.get("Authorization", "").startswith("Basic ")
        raise InvalidClientError(
            description="client_id does not match the authenticated client", status_code=401 if used_basic else 400
        )


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only: a challenge with any other method, or none (which RFC 7636 reads as plain), is refused."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge = data.get("code_challenge")
        if challenge and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256", redirect_uri=redirect_uri)
        super().validate_code_challenge(grant, redirect_uri)
        if challenge and not S256_CHALLENGE.fullmatch(challenge):
            # RFC 7636 4.2: BASE64URL(SHA256(verifier)) is always 43 characters; any other could never be redeemed.
            raise InvalidRequestError(
                "code_challenge must be 43 base64url characters (S256 of the verifier)", redirect_uri=redirect_uri
            )


class StrictClientAuthentication:
    """Client authentication that also refuses a body naming another client, before the grant looks at anything."""

    request: Any

    def authenticate_token_endpoint_client(self) -> BrokerClient:
        client: BrokerClient = super().authenticate_token_endpoint_client()  # type: ignore[misc]
        _check_client_id_matches(self.request, client)
        if client.revoked:  # its connections ended with it: the platform must reconnect (with a new client)
            raise InvalidGrantError(description="The client was revoked: its grants no longer work.")
        return client


class CodeGrant(StrictClientAuthentication, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: BrokerClient) -> str:
        if client.revoked:  # refused like an unknown client: an error page, never a redirect
            raise InvalidClientError(description="The client was revoked.")
        uri: str = grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)
        return uri

    def generate_authorization_code(self) -> str:
        return secrets.token_urlsafe(32)

    def save_authorization_code(self, code: str, request: Any) -> None:
        approval: Approval = request.user
        client: BrokerClient = request.client
        if not serves_workspace(client.row, approval.workspace_id):
            raise AccessDeniedError(description="This client may connect only the workspace that registered it.")
        payload = request.payload.data
        tokens.issue_code(
            current_session(),
            code,
            client.row,
            approval.workspace_id,
            approval.user_id,
            payload.get("redirect_uri"),
            request.scope,
            payload.get("code_challenge"),
            payload.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: BrokerClient) -> BrokerCode | None:
        session = current_session()
        found = tokens.consume_code(session, client.row, code)
        if isinstance(found, CodeReplay):
            code_replay_event(session, client_actor(client, self.request), found)
            return None
        return None if found is None else BrokerCode(found)

    def delete_authorization_code(self, authorization_code: BrokerCode) -> None:
        return None  # consumed when it was looked up

    def authenticate_user(self, authorization_code: BrokerCode) -> int:
        return authorization_code.row.user_id

    def create_token_response(self) -> TokenResponse:
        session = current_session()
        client: BrokerClient = self.request.client
        code: BrokerCode = self.request.authorization_code
        if not hold_active(session, client.row):  # revoked while this request was under way
            raise InvalidGrantError(description="The client was revoked: its grants no longer work.")
        if not serves_workspace(client.row, code.row.workspace_id):
            raise InvalidGrantError(description="The code was issued for a workspace this client may not reach.")
        approved_by = session.scalar(select(User.public_id).where(User.id == code.row.user_id)) or "unknown"
        issued = tokens.redeem(session, client.row, code.row, approved_by, self.server.lifetimes)
        entry = AuditEntry(
            action="connection.created",
            workspace_id=code.row.workspace_id,
            target_id=issued.connection_id,
            details={"platform": client.row.platform, "scope": issued.scope, "approved_by": approved_by},
        )
        record(session, client_actor(client, self.request), entry, "ok", None)
        return 200, issued.to_json(), self.TOKEN_RESPONSE_HEADER


class RefreshGrant(StrictClientAuthentication, grants.RefreshTokenGrant):  # type: ignore[misc]
    """Refresh, rotating the token every time. The common case (an active token, presented once) is rotated in few
    statements by services.refresh; the rest, with the rules (replay window, reuse detection), is services.tokens'."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError()
        if not self.request.form.get("refresh_token"):
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        scope = self.request.form.get("scope")
        if scope is not None and not scope.split():
            raise InvalidScopeError()
        self.request.client = client

    def create_token_response(self) -> TokenResponse:
        transaction = current_transaction()
        client: BrokerClient = self.request.client
        form, actor, lifetimes = self.request.form, client_actor(client, self.request), self.server.lifetimes
        presented, scope = form["refresh_token"], form.get("scope")
        rotated = refresh.rotate_active(transaction, client.row, presented, scope, lifetimes)
        if rotated is not None:
            rotated_event(transaction, actor, rotated)
            return 200, rotated.tokens.to_json(), self.TOKEN_RESPONSE_HEADER
        if not isinstance(transaction, Session):
            raise GeneralPathNeeded  # nothing was written: the request runs again with a Session, decided below
        session = transaction
        outcome = tokens.refresh(session, client.row, presented, scope, lifetimes)
        refresh_event(session, actor, outcome)
        if isinstance(outcome, Refused):
            if isinstance(outcome.error, InvalidScope):
                raise InvalidScopeError(description=outcome.error.message)
            raise InvalidGrantError(description=outcome.error.message)
        return 200, outcome.tokens.to_json(), self.TOKEN_RESPONSE_HEADER

    def authenticate_refresh_token(self, refresh_token: str) -> None:
        raise NotImplementedError("refresh requests are decided in create_token_response")

    def authenticate_user(self, refresh_token: Any) -> None:
        raise NotImplementedError("refresh requests are decided in create_token_response")

    def revoke_old_credential(self, refresh_token: Any) -> None:
        raise NotImplementedError("refresh requests are decided in create_token_response")


def client_actor(client: BrokerClient, request: Any) -> Actor:
    return Actor(label=f"client:{client.get_client_id()}"[:80], client_address=getattr(request, "client_address", None))
