"""Request bodies are bounded before anything parses them: one ASGI middleware around the whole app.

A declared `Content-Length` over the limit is answered `413` without reading a byte of the body. A body without a
declared length (chunked) is counted as it streams: the moment it passes the limit, the handler reading it is stopped
and the answer is `413`. An answer given partway through reading a body (a form field over its own limit) closes the
connection, so the server does not go on draining the rest of an attacker's body. So no form, JSON document or
multipart part the app reads can hold more than `limit` bytes, whoever sends it and however, and an anonymous client
cannot make the server buffer a large body (Starlette's form parser alone would accept 1,000 fields of 1 MiB each).
"""

from __future__ import annotations

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from token_broker.error_responses import answers_json, api_error
from token_broker.errors import PayloadTooLarge

# Every form and JSON body the service takes is far smaller: the largest is a key with allow-lists, a few KiB.
MAX_BODY_BYTES = 64 * 1024
_OAUTH_PATHS = ("/oauth/token", "/oauth/revoke", "/oauth/introspect")
_BODYLESS = frozenset({"GET", "HEAD"})
# Endpoints that take larger bodies cap them themselves, as they stream (a scanner's report of up to 1,000 matches).
_OWN_LIMIT_PREFIXES = ("/secret-scanning/",)


class BodyTooLarge(Exception):
    """Raised into the handler that reads past the limit; never a BrokerError, so only BodyLimit answers it."""


def too_large_response(path: str, limit: int) -> Response:
    """The 413 in the form the path's clients read: OAuth's error object at the token endpoints, the API's where
    errors are JSON, plain text on pages."""
    message = f"The request body is larger than {limit} bytes."
    if path in _OAUTH_PATHS:
        body = {"error": "invalid_request", "error_description": message}
        return JSONResponse(body, status_code=413, headers={"Cache-Control": "no-store", "Connection": "close"})
    if answers_json(path):
        return api_error(PayloadTooLarge(message), {"Connection": "close"})
    return PlainTextResponse(message, status_code=413, headers={"Cache-Control": "no-store", "Connection": "close"})


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS or scope["path"].startswith(_OWN_LIMIT_PREFIXES):
            # No GET or HEAD handler reads a body, so the hot path (GET /v1/...) pays nothing here.
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        declared = _declared_length(scope)
        if declared is not None and declared > self.limit:
            await too_large_response(path, self.limit)(scope, receive, send)
            return
        counted = 0
        started = False
        reading = False  # the handler began to read the body and has not read to its end

        async def counting_receive() -> Message:
            nonlocal counted, reading
            message = await receive()
            if message["type"] == "http.request":
                counted += len(message.get("body", b""))
                reading = bool(message.get("more_body", False))
                if counted > self.limit:
                    raise BodyTooLarge
            return message

        async def noting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if reading:  # refused partway through the body (a form field over its limit): read no more of it
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counting_receive, noting_send)
        except BodyTooLarge:
            if started:
                raise
            await too_large_response(path, self.limit)(scope, receive, send)
