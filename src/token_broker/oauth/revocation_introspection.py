"""RFC 7009 revocation and RFC 7662 introspection, for the platforms' own clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from token_broker.oauth.fast_introspection import note_described
from token_broker.oauth.grants import client_actor
from token_broker.oauth.models import AUTH_METHODS, BrokerClient
from token_broker.oauth.server import current_session
from token_broker.oauth.token_audit import revoke_event
from token_broker.services import tokens


@dataclass(frozen=True)
class Presented:
    value: str


def _presented(request: Any) -> Presented:
    # An unknown token_type_hint is ignored rather than refused: RFC 7009 2.1 lets the server search all types.
    token = request.form.get("token")
    if not token:
        raise InvalidRequestError("Missing 'token' in request.")
    return Presented(token)


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = list(AUTH_METHODS)

    def authenticate_token(self, request: Any, client: BrokerClient) -> Presented:
        return _presented(request)

    def revoke_token(self, token: Presented, request: Any) -> None:
        session = current_session()
        client: BrokerClient = request.client
        ended = tokens.revoke(session, client.row, token.value)
        if ended is not None:
            revoke_event(session, client_actor(client, request), ended)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """Active tokens carry account_id, platform and connection_id too. A client may introspect only its own tokens."""

    CLIENT_AUTH_METHODS = list(AUTH_METHODS)

    def authenticate_token(self, request: Any, client: BrokerClient) -> dict[str, Any] | None:
        described = tokens.describe(current_session(), _presented(request).value)
        if described is not None:
            note_described(request, described[1].fields)
        if described is None or described[0] != client.row.id:
            return None
        return described[1].fields

    def create_introspection_payload(self, token: dict[str, Any] | None) -> dict[str, Any]:
        return token if token is not None else {"active": False}
