"""The authorization server: authlib's AuthorizationServer with our grants, endpoints and storage.

authlib is synchronous and calls our storage from inside its flow, so each call runs in a worker thread within one
store transaction, which the grants reach through `current_session()`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import OAuth2Error
from sqlalchemy import JSON
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from token_broker.oauth import client_auth
from token_broker.oauth.auth_failures import AuthFailures
from token_broker.oauth.client_cache import VerifiedClients
from token_broker.oauth.introspection_cache import DescriptionCache
from token_broker.oauth.models import BrokerClient
from token_broker.scopes import ALL_SCOPES, Manifest
from token_broker.services.client_rows import CLIENT_COLUMNS, ClientRecord
from token_broker.services.tokens import TokenLifetimes
from token_broker.store.database import Database
from token_broker.store.lean_write import LeanWrite
from token_broker.store.models import UTCDateTime
from token_broker.store.raw_statements import RawCursor, RawStatement

T = TypeVar("T")
DEFAULT_DESCRIPTIONS = {
    "invalid_request": "The request is missing a parameter or is malformed.",
    "invalid_client": "Client authentication failed.",
    "invalid_grant": "The grant is invalid, expired or revoked.",
    "unauthorized_client": "This client may not use this grant type.",
    "unsupported_grant_type": "Use grant_type authorization_code or refresh_token.",
    "unsupported_response_type": "Use response_type code.",
    "invalid_scope": "The requested scope is invalid or wider than allowed.",
    "access_denied": "The user denied the request.",
    "unsupported_token_type": "This token type cannot be revoked.",
}
_VERIFIED = "verified_client"  # on a request: (session, client, presented) of its verified client authentication
# Read on the transaction's DB-API cursor (store.raw_statements) into a plain record: through the ORM, reading the
# row and building its instance cost about a sixth of a whole refresh request.
_CLIENT_BY_ID = RawStatement(
    f"SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = :client_id",  # noqa: S608 - constant columns
    results={4: JSON(), 7: UTCDateTime(), 8: UTCDateTime()},
)
_session: contextvars.ContextVar[Session | LeanWrite] = contextvars.ContextVar("oauth_session")
_issuer: contextvars.ContextVar[str] = contextvars.ContextVar("oauth_issuer")


class GeneralPathNeeded(Exception):
    """Raised inside a lean transaction (run_lean) by whatever needs the ORM's Session: the lean transaction rolls back
    (nothing was written in it) and the call runs again from the start in a write() transaction."""


def current_session() -> Session:
    """The call's Session; inside a lean transaction, GeneralPathNeeded (the call is run again with a Session)."""
    found = _session.get()
    if isinstance(found, LeanWrite):
        raise GeneralPathNeeded
    return found


def current_transaction() -> Session | LeanWrite:
    """The call's transaction, lean or not, for statements on the DB-API cursor (store.raw_statements)."""
    return _session.get()


class BrokerAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self, database: Database, manifests: dict[str, Manifest], lifetimes: TokenLifetimes, failures: AuthFailures
    ) -> None:
        super().__init__(scopes_supported=list(ALL_SCOPES))
        self.database = database
        self.manifests = manifests
        self.lifetimes = lifetimes
        self.auth_failures = failures
        self.verified_clients = VerifiedClients()
        self.descriptions = DescriptionCache()

    def forget_change(self, note_id: str) -> None:
        """A change note was heard (a credential's or a client's): what was remembered of it is read afresh."""
        self.verified_clients.forget_change(note_id)
        self.descriptions.invalidate(note_id)

    def forget_everything(self) -> None:
        """The change notes could not be read: nothing remembered can be trusted to be current."""
        self.verified_clients.clear()
        self.descriptions.clear()

    @contextmanager
    def transaction(self, issuer: str, write: bool = True) -> Iterator[Session]:
        """A transaction for one authlib call (in the calling thread); grants find it with current_session()."""
        with self.database.write() if write else self.database.read() as session:
            session_token, issuer_token = _session.set(session), _issuer.set(issuer)
            try:
                yield session
            finally:
                _session.reset(session_token)
                _issuer.reset(issuer_token)

    def run(self, issuer: str, call: Callable[[], T], write: bool = True) -> T:
        with self.transaction(issuer, write):
            return call()

    def run_lean(self, issuer: str, call: Callable[[], T]) -> T:
        """`call` in a lean write transaction (store.lean_write), for a call whose common case needs no Session (a
        refresh grant); when it turns out to need one (GeneralPathNeeded, raised before anything was written), the
        lean transaction rolls back and `call` runs again, from the start, in a write() transaction."""
        try:
            with self.database.lean_write() as lean:
                session_token, issuer_token = _session.set(lean), _issuer.set(issuer)
                try:
                    return call()
                finally:
                    _session.reset(session_token)
                    _issuer.reset(issuer_token)
        except GeneralPathNeeded:
            return self.run(issuer, call)

    def query_client(self, client_id: str) -> BrokerClient | None:
        """The client, revoked or not: a revoked one is refused at each endpoint (BrokerClient.revoked), so that at
        the token endpoint, after authenticating, it is told invalid_grant, the platforms' signal to reconnect."""
        cursor = RawCursor(current_transaction())
        try:
            found = cursor.one_or_none(_CLIENT_BY_ID, {"client_id": client_id})
        finally:
            cursor.close()
        if found is None:
            return None
        row = ClientRecord(*found)
        return BrokerClient(row, self.manifests.get(row.platform))

    def authenticate_client(self, request: OAuth2Request, methods: list[str], endpoint: str = "token") -> BrokerClient:
        """One method per request, chosen by what the request presents (client_auth), never tried in turn.

        The secret is verified once per transaction: the token routes authenticate before authlib runs, and when
        authlib asks again in the same transaction (introspection, revocation), the row it would read is the one
        already read, so only the endpoint's own rule (a revoked client) is checked again. A write that follows in
        a transaction of its own verifies afresh, so a client revoked or rotated in between is refused."""
        session = current_transaction()
        verified = getattr(request, _VERIFIED, None)
        if verified is not None and verified[0] is session:
            return client_auth.admit(request, verified[1], verified[2], endpoint)
        client = client_auth.authenticate(request, self.query_client, endpoint)
        presented = client_auth.presented_client(request)
        assert presented is not None
        setattr(request, _VERIFIED, (session, client, presented))
        return client

    def handle_error_response(self, request: OAuth2Request, error: OAuth2Error) -> Response:
        if not error.description:  # authlib leaves some without one (unsupported_grant_type); RFC 6749 5.2 wants it
            error.description = error.get_error_description() or DEFAULT_DESCRIPTIONS.get(error.error, error.error)
        response: Response = super().handle_error_response(request, error)
        return response

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        raise NotImplementedError("the grants issue and store their own tokens")

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        header_map = dict(headers)
        if status in (301, 302, 303) and "Location" in header_map:
            # RFC 9207: every authorization response names its issuer, errors included.
            header_map["Location"] = add_params_to_uri(header_map["Location"], [("iss", _issuer.get())])
            header_map["Cache-Control"] = "no-store"
            return Response(status_code=302, headers=header_map)
        header_map.setdefault("Cache-Control", "no-store")
        header_map.pop("Content-Type", None)
        try:  # what JSONResponse would send (compact, UTF-8), for a tenth of json.dumps' time
            content = orjson.dumps(body)
        except TypeError:  # orjson refuses what json takes (an int beyond 64 bits): the answer stays the same
            return JSONResponse(body, status_code=status, headers=header_map)
        return Response(content, status_code=status, headers=header_map, media_type="application/json")


def authorization_server(connection: HTTPConnection) -> BrokerAuthorizationServer:
    """The running app's authorization server, which its lifespan puts in the request state."""
    found: BrokerAuthorizationServer = connection.state.authorization_server
    return found
