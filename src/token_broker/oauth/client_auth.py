"""Client authentication at the token, revocation and introspection endpoints: exactly one method per request.

RFC 6749 2.3: a client uses one authentication method per request. The method is chosen from what the request
presents, never by trying one after another: an Authorization: Basic header means client_secret_basic, and a Basic
attempt that fails is answered 401 without falling through to the body; Basic together with a client_secret in the
body is 400 invalid_request; client_id and client_secret in the body mean client_secret_post. Unknown client and
wrong secret get the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6749.util import extract_basic_authorization

from token_broker.oauth.models import BrokerClient

BASIC = "client_secret_basic"
POST = "client_secret_post"


@dataclass(frozen=True)
class PresentedClient:
    client_id: str
    secret: str
    method: str

    def __repr__(self) -> str:
        return f"PresentedClient(client_id={self.client_id!r}, method={self.method!r})"


def uses_basic(request: Any) -> bool:
    return str(request.headers.get("Authorization", "")).startswith("Basic ")


def presented_client(request: Any) -> PresentedClient | None:
    """The one set of client credentials the request presents; None when it presents none."""
    form = request.form
    if uses_basic(request):
        if "client_secret" in form:
            raise InvalidRequestError(
                "Use one client authentication method: the Basic header or client_secret in the body, not both."
            )
        client_id, secret = extract_basic_authorization(request.headers)
        return PresentedClient(client_id or "", secret or "", BASIC)
    client_id, secret = form.get("client_id"), form.get("client_secret")
    if client_id is None and secret is None:
        return None
    return PresentedClient(client_id or "", secret or "", POST)


def authenticate(
    request: Any, query_client: Callable[[str], BrokerClient | None], endpoint: str = "token"
) -> BrokerClient:
    """The client the request authenticates as, or InvalidClientError (401 for Basic, RFC 6749 5.2; 400 otherwise)."""
    presented = presented_client(request)
    if presented is None:
        raise InvalidClientError(description="Authenticate the client with client_secret_basic or client_secret_post.")
    client = query_client(presented.client_id) if presented.client_id else None
    if client is None or not presented.secret or not client.check_client_secret(presented.secret):
        raise InvalidClientError(status_code=_failure_status(presented), description="Client authentication failed.")
    return admit(request, client, presented, endpoint)


def admit(request: Any, client: BrokerClient, presented: PresentedClient, endpoint: str) -> BrokerClient:
    """The client whose secret was verified, if it may authenticate at `endpoint` (a revoked one only at token)."""
    if not client.check_endpoint_auth_method(presented.method, endpoint):
        raise InvalidClientError(status_code=_failure_status(presented), description="Client authentication failed.")
    request.auth_method = presented.method
    return client


def _failure_status(presented: PresentedClient) -> int:
    return 401 if presented.method == BASIC else 400
