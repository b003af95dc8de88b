"""POST /oauth/token, /oauth/revoke, /oauth/introspect and the RFC 8414 metadata document.

Each reads its form on the event loop, then runs authlib and the store work in a worker thread, in one transaction;
an introspection whose client and token were both remembered is answered on the event loop (oauth/fast_introspection).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from anyio import from_thread, to_thread
from authlib.oauth2.rfc6749.errors import InsecureTransportError, OAuth2Error
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from token_broker.app_state import resources
from token_broker.error_responses import oauth_error
from token_broker.oauth.client_auth import presented_client, uses_basic
from token_broker.oauth.fast_introspection import cached_answer, remember
from token_broker.oauth.models import AUTH_METHODS
from token_broker.oauth.request_adapter import (
    BadClientCredentials,
    BadRequest,
    BrokerRequest,
    build_request,
    urlencoded_pairs,
)
from token_broker.oauth.server import BrokerAuthorizationServer, authorization_server
from token_broker.observe.metrics import metrics_of
from token_broker.scopes import ALL_SCOPES
from token_broker.sources import source_of

Endpoint = Callable[[Request], Awaitable[Response]]
GRANT_TYPES = ("authorization_code", "refresh_token")

MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 50
FORM_TYPE = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def issuer_of(request: Request) -> str:
    """The configured issuer, never the Host this request named: create_app refuses to start without one."""
    return resources(request).settings.require_issuer()


def server_of(request: Request) -> BrokerAuthorizationServer:
    return authorization_server(request)


def _address_refused(request: Request) -> Response | None:
    """429 for an address (an IPv6 /64) that failed client authentication too often, before its request is read."""
    address = request.client.host if request.client else None
    wait = server_of(request).auth_failures.retry_after(source_of(address))
    if wait is None:
        return None
    description = "Too many failed client authentications from this address: retry after Retry-After seconds."
    return oauth_error(429, "rate_limited", description, {"Retry-After": str(wait)})


def _charge_failure(request: Request) -> None:
    """One failed client authentication of the request's address."""
    server_of(request).auth_failures.charge(source_of(request.client.host if request.client else None))


async def _form_request(request: Request, path: str) -> BrokerRequest | Response:
    """authlib's request for a form POST, or the error response that ends it here."""
    refused = _address_refused(request)
    if refused is not None:
        return refused
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        return oauth_error(400, "invalid_request", f"Send the parameters as {FORM_TYPE}.")
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
        return oauth_error(400, "invalid_request", "The request body is missing its length or is too large.")
    try:
        pairs = urlencoded_pairs(await request.body())  # the content type was checked above
        if len(pairs) > MAX_FORM_FIELDS:
            return oauth_error(400, "invalid_request", "The form could not be read.")
        oauth_request = build_request("POST", issuer_of(request), path, request.headers, pairs, True)
    except BadClientCredentials as error:
        _charge_failure(request)
        return oauth_error(401, "invalid_client", str(error), {"WWW-Authenticate": 'Basic realm="token-broker"'})
    except BadRequest as error:
        return oauth_error(400, "invalid_request", str(error))
    except InsecureTransportError:
        return oauth_error(400, "invalid_request", "The authorization server must be reached over https.")
    except (ValueError, UnicodeDecodeError, HTTPException):
        return oauth_error(400, "invalid_request", "The form could not be read.")
    oauth_request.client_address = request.client.host if request.client else None
    return oauth_request


def _answered(oauth_request: BrokerRequest, response: Response) -> Response:
    if response.status_code == 401 and not uses_basic(oauth_request):
        # 401 only where Basic client authentication failed: Zapier turns any 401 here into "reconnect".
        response.status_code = 400
        del response.headers["www-authenticate"]
    return response


async def _run(
    request: Request,
    oauth_request: BrokerRequest,
    call: Callable[[BrokerAuthorizationServer], Any],
    write: bool = True,
    lean: bool = False,
) -> Response:
    """Authenticate the client, charge its budget, then run `call`; all in one worker thread.

    The client is charged only once it has authenticated: requests naming a client (ids are public) without its
    secret cost that client nothing, and cost their own address a failure (_address_refused stops an address that
    has too many). Authentication runs in a read transaction; a read-only call (introspection) continues in it, a
    write gets its own transaction afterwards, so no write lock is held while the budget is charged. When the same
    client credentials authenticated a moment ago (oauth/client_cache.py), the budget is charged without that read
    transaction and the call's own transaction authenticates the client (_run_verified)."""
    state, server, issuer = resources(request), server_of(request), issuer_of(request)
    limiter, limit = state.guard.rate_limiter, state.settings.token_rate_limit
    digest = _verified_digest(server, oauth_request)
    known = server.verified_clients.get(digest) if digest is not None else None
    if digest is not None and known is not None:
        return await _run_verified(request, oauth_request, call, digest, known, write, lean)

    def admitted() -> tuple[Response, bool]:
        """The response, and whether client authentication failed."""
        since = server.verified_clients.generation
        with server.transaction(issuer, write=False):
            try:
                client = server.authenticate_client(oauth_request, list(AUTH_METHODS))
            except OAuth2Error as error:
                refused: Response = server.handle_error_response(oauth_request, error)
                return refused, True
            client_id = client.get_client_id()
            if digest is not None and not client.revoked:
                server.verified_clients.put(digest, client_id, since, client.row.previous_valid_until)
            decision = from_thread.run(limiter.hit, f"client:{client_id}", (limit,))
            if not decision.allowed:
                return _rate_limited(decision.headers()), False
            if not write:
                answered: Response = call(server)
                return answered, False
        return _ran(server, issuer, call, digest, write, lean), False

    response, failed = await to_thread.run_sync(admitted)
    if failed:
        _charge_failure(request)
    return _answered(oauth_request, response)


async def _run_verified(
    request: Request,
    oauth_request: BrokerRequest,
    call: Callable[[BrokerAuthorizationServer], Any],
    digest: bytes,
    client_id: str,
    write: bool,
    lean: bool,
) -> Response:
    """A request whose client authenticated with the same credentials a moment ago: its budget is charged on the event
    loop, without a transaction of its own; the call's transaction authenticates it again (authlib asks), and that is
    the check that counts."""
    state, server, issuer = resources(request), server_of(request), issuer_of(request)
    decision = await state.guard.rate_limiter.hit(f"client:{client_id}", (state.settings.token_rate_limit,))
    if not decision.allowed:
        return _rate_limited(decision.headers())
    response = await to_thread.run_sync(_ran, server, issuer, call, digest, write, lean)
    return _answered(oauth_request, response)


def _ran(
    server: BrokerAuthorizationServer,
    issuer: str,
    call: Callable[[BrokerAuthorizationServer], Any],
    digest: bytes | None,
    write: bool,
    lean: bool = False,
) -> Response:
    """`call` in a transaction of its own (`lean`: a lean write first, server.run_lean); a client refused there
    (changed since, revoked at introspection, or the body names another client) is verified afresh next time, in a
    read transaction that charges its address for a failure as usual."""
    if lean:
        response: Response = server.run_lean(issuer, lambda: call(server))
    else:
        response = server.run(issuer, lambda: call(server), write)
    if digest is not None and _client_refused(response):
        server.verified_clients.drop(digest)
    return response


def _verified_digest(server: BrokerAuthorizationServer, oauth_request: BrokerRequest) -> bytes | None:
    """The cache key of the client credentials the request presents; None when it presents none, or two methods."""
    try:
        presented = presented_client(oauth_request)
    except OAuth2Error:
        return None
    if presented is None or not presented.client_id or not presented.secret:
        return None
    return server.verified_clients.digest(presented)


def _client_refused(response: Response) -> bool:
    return response.status_code in (400, 401) and b'"invalid_client"' in bytes(response.body)


def _rate_limited(rate_headers: list[tuple[bytes, bytes]]) -> Response:
    headers = {name.decode(): value.decode() for name, value in rate_headers}
    return oauth_error(429, "rate_limited", "Too many token requests: retry after Retry-After seconds.", headers)


def _grant_type_refusal(oauth_request: BrokerRequest) -> Response | None:
    """A missing or unknown grant_type is refused before anything else, as authlib would, with a description."""
    grant_type = oauth_request.form.get("grant_type")
    if not grant_type:
        return oauth_error(400, "invalid_request", "Missing grant_type: use authorization_code or refresh_token.")
    if grant_type not in GRANT_TYPES:
        return oauth_error(400, "unsupported_grant_type", "Use grant_type authorization_code or refresh_token.")
    return None


async def token(request: Request) -> Response:
    oauth_request = await _form_request(request, "/oauth/token")
    if isinstance(oauth_request, Response):
        return oauth_request
    refused = _grant_type_refusal(oauth_request)
    if refused is not None:
        return refused
    refreshing = oauth_request.form.get("grant_type") == "refresh_token"
    response = await _run(
        request, oauth_request, lambda server: server.create_token_response(oauth_request), lean=refreshing
    )
    if refreshing:
        metrics_of(request).refreshes.labels("ok" if response.status_code == 200 else "refused").inc()
    return response


async def revoke(request: Request) -> Response:
    oauth_request = await _form_request(request, "/oauth/revoke")
    if isinstance(oauth_request, Response):
        return oauth_request
    return await _run(
        request, oauth_request, lambda server: server.create_endpoint_response("revocation", oauth_request)
    )


async def introspect(request: Request) -> Response:
    """Answered on the event loop when the client's authentication and the token's description are both remembered
    (oauth/fast_introspection.py); otherwise through authlib, and the description it read is remembered."""
    oauth_request = await _form_request(request, "/oauth/introspect")
    if isinstance(oauth_request, Response):
        return oauth_request
    server = server_of(request)
    digest = _verified_digest(server, oauth_request)
    client_id = server.verified_clients.get(digest) if digest is not None else None
    if client_id is not None:
        cached = cached_answer(server.descriptions, client_id, oauth_request.form)
        if cached is not None:
            state = resources(request)
            decision = await state.guard.rate_limiter.hit(f"client:{client_id}", (state.settings.token_rate_limit,))
            return cached if decision.allowed else _rate_limited(decision.headers())
    since = server.descriptions.generation
    response = await _run(
        request,
        oauth_request,
        lambda server: server.create_endpoint_response("introspection", oauth_request),
        write=False,
    )
    remember(server.descriptions, oauth_request, since)
    return response


class AllowOnly:
    """An ASGI app serving `endpoint` for `methods` and 405 with Allow for any other (as a plain function route, a
    wrong method would fall through to the dashboard's catch-all mount and be answered 404)."""

    def __init__(self, methods: tuple[str, ...], endpoint: Endpoint) -> None:
        self.methods = methods
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        if request.method in self.methods:
            response = await self.endpoint(request)
        else:
            allowed = ", ".join(self.methods)
            response = oauth_error(405, "invalid_request", f"This endpoint takes {allowed} only.", {"Allow": allowed})
        await response(scope, receive, send)


async def metadata(request: Request) -> Response:
    issuer = issuer_of(request)
    methods = list(AUTH_METHODS)
    return JSONResponse(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "introspection_endpoint": f"{issuer}/oauth/introspect",
            "response_types_supported": ["code"],
            "grant_types_supported": list(GRANT_TYPES),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
            "introspection_endpoint_auth_methods_supported": methods,
            "scopes_supported": list(ALL_SCOPES),
            "authorization_response_iss_parameter_supported": True,
            "service_documentation": f"{issuer}/openapi.json",
        },
        headers={"Cache-Control": "public, max-age=300"},
    )
