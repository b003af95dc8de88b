"""POST /oauth/token, /oauth/revoke, /oauth/introspect and the RFC 8414 metadata document.

Each reads its form on the event loop, then runs authlib and the store work in a worker thread, in one transaction.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from anyio import to_thread
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from token_broker.app_state import resources
from token_broker.oauth.requests import BadClientCredentials, BadRequest, BrokerRequest, build_request, form_pairs
from token_broker.oauth.server import BrokerAuthorizationServer
from token_broker.scopes import ALL_SCOPES

MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 50
FORM_TYPE = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def issuer_of(request: Request) -> str:
    """The configured issuer; without one (development), the address this request reached."""
    return resources(request).settings.issuer or str(request.base_url).rstrip("/")


def oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={**NO_STORE, **(headers or {})})  # fmt: skip


def server_of(request: Request) -> BrokerAuthorizationServer:
    server: BrokerAuthorizationServer = resources(request).oauth
    return server


async def _form_request(request: Request, path: str) -> BrokerRequest | Response:
    """authlib's request for a form POST, or the error response that ends it here."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        return oauth_error(400, "invalid_request", f"Send the parameters as {FORM_TYPE}.")
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
        return oauth_error(400, "invalid_request", "The request body is missing its length or is too large.")
    try:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
        oauth_request = build_request("POST", issuer_of(request), path, request.headers, form_pairs(form), True)
    except BadClientCredentials as error:
        return oauth_error(401, "invalid_client", str(error), {"WWW-Authenticate": 'Basic realm="token-broker"'})
    except BadRequest as error:
        return oauth_error(400, "invalid_request", str(error))
    except InsecureTransportError:
        return oauth_error(400, "invalid_request", "The authorization server must be reached over https.")
    except (ValueError, UnicodeDecodeError, HTTPException):
        return oauth_error(400, "invalid_request", "The form could not be read.")
    oauth_request.client_address = request.client.host if request.client else None
    return oauth_request


def _client_key(oauth_request: BrokerRequest) -> str:
    """Who a token request claims to be, for its rate limit: the Basic user name, the form's client_id, or the
    caller's address when it names no client."""
    authorization = oauth_request.headers.get("Authorization", "")
    if authorization.startswith("Basic "):
        return "client:" + base64.b64decode(authorization[6:]).decode().split(":", 1)[0]
    return "client:" + (oauth_request.form.get("client_id") or f"address:{oauth_request.client_address}")


async def _run(
    request: Request,
    oauth_request: BrokerRequest,
    call: Callable[[BrokerAuthorizationServer], Any],
    write: bool = True,
) -> Response:
    server = server_of(request)
    issuer = issuer_of(request)
    response: Response = await to_thread.run_sync(lambda: server.run(issuer, lambda: call(server), write))
    if response.status_code == 401 and not oauth_request.headers.get("Authorization", "").startswith("Basic "):
        # 401 only where Basic client authentication failed: Zapier turns any 401 here into "reconnect".
        response.status_code = 400
        del response.headers["www-authenticate"]
    return response


async def token(request: Request) -> Response:
    oauth_request = await _form_request(request, "/oauth/token")
    if isinstance(oauth_request, Response):
        return oauth_request
    state = resources(request)
    decision = await state.guard.rate_limiter.hit(_client_key(oauth_request), (state.settings.token_rate_limit,))
    if not decision.allowed:
        headers = {name.decode(): value.decode() for name, value in decision.headers()}
        return oauth_error(429, "rate_limited", "Too many token requests: retry after Retry-After seconds.", headers)
    response = await _run(request, oauth_request, lambda server: server.create_token_response(oauth_request))
    if oauth_request.form.get("grant_type") == "refresh_token":
        state.metrics.refreshes.labels("ok" if response.status_code == 200 else "refused").inc()
    return response


async def revoke(request: Request) -> Response:
    oauth_request = await _form_request(request, "/oauth/revoke")
    if isinstance(oauth_request, Response):
        return oauth_request
    return await _run(
        request, oauth_request, lambda server: server.create_endpoint_response("revocation", oauth_request)
    )


async def introspect(request: Request) -> Response:
    oauth_request = await _form_request(request, "/oauth/introspect")
    if isinstance(oauth_request, Response):
        return oauth_request
    return await _run(
        request,
        oauth_request,
        lambda server: server.create_endpoint_response("introspection", oauth_request),
        write=False,
    )


async def metadata(request: Request) -> Response:
    issuer = issuer_of(request)
    methods = ["client_secret_basic", "client_secret_post"]
    return JSONResponse(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "introspection_endpoint": f"{issuer}/oauth/introspect",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
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
