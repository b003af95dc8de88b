"""Errors of the workspace API as HTTP responses: {"error", "message"}, with the contract's status and headers."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

from token_broker.errors import (
    BrokerError,
    CredentialRefused,
    InsufficientScope,
    MissingCredential,
    ReconnectRequired,
)

REALM = 'Bearer realm="workspace-api"'


def error_response(error: BrokerError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, object] = {"error": error.code, "message": error.message}
    all_headers = {"Cache-Control": "no-store", **(headers or {})}
    if isinstance(error, ReconnectRequired):
        body["reconnect"] = True
    if isinstance(error, CredentialRefused) and error.status == 401:
        all_headers["WWW-Authenticate"] = (
            REALM if isinstance(error, MissingCredential) else f'{REALM}, error="invalid_token"'
        )
    if isinstance(error, InsufficientScope):
        all_headers["WWW-Authenticate"] = f'{REALM}, error="insufficient_scope"'
    return JSONResponse(body, status_code=error.status, headers=all_headers)
