"""The error tree's renderers, one per wire style, so each style is written once:

- `api_error`: the workspace API's `{"error", "message"}` (and `reconnect: true`), with its Bearer challenges; the
  guard is given it by the app, the API's handlers, the report endpoint and the app's error handlers use it;
- `oauth_error`: OAuth's `{"error", "error_description"}` (RFC 6749 5.2), for the authorization server's own answers;
- `page_error`: a small HTML page, for the dashboard's pages.

Every answer carries the error's own headers (Retry-After, Allow) and `Cache-Control: no-store`. `answers_json` says
which style a path's clients read when nothing more particular applies: the API's JSON or a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from starlette.responses import HTMLResponse, JSONResponse

from token_broker.errors import (
    BrokerError,
    CredentialRefused,
    InsufficientScope,
    MissingCredential,
    ReconnectRequired,
)

REALM = 'Bearer realm="workspace-api"'
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
JSON_PREFIXES = (
    "/v1/",
    "/api/",
    "/oauth/",
    "/openapi.json",
    "/.well-known/",
    "/secret-scanning/",
    "/healthz",
    "/readyz",
)


def answers_json(path: str) -> bool:
    """Whether the path's clients read JSON errors (programs), rather than a page (people in a browser)."""
    return path.startswith(JSON_PREFIXES)


def api_error(error: BrokerError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, object] = {"error": error.code, "message": error.message}
    all_headers = {"Cache-Control": "no-store", **error.headers, **(headers or {})}
    if isinstance(error, ReconnectRequired):
        body["reconnect"] = True
    if isinstance(error, CredentialRefused) and error.status == 401:
        all_headers["WWW-Authenticate"] = (
            REALM if isinstance(error, MissingCredential) else f'{REALM}, error="invalid_token"'
        )
    if isinstance(error, InsufficientScope):
        all_headers["WWW-Authenticate"] = f'{REALM}, error="insufficient_scope"'
    return JSONResponse(body, status_code=error.status, headers=all_headers)


def oauth_error(status: int, error: str, description: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers={**NO_STORE, **(headers or {})}
    )


def oauth_error_of(error: BrokerError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return oauth_error(error.status, error.code, error.message, {**error.headers, **(headers or {})})


def page_error(error: BrokerError, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """A page that says what went wrong; the caller adds its pages' security headers."""
    message = escape(error.message)
    body = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Error</title></head>'
        f"<body><main><h1>Error</h1><p>{message}</p></main></body></html>\n"
    )
    all_headers = {"Cache-Control": "no-store", **error.headers, **(headers or {})}
    return HTMLResponse(body, status_code=error.status, headers=all_headers)
