"""The request middleware: a request id for every request, one JSON log line and the request metrics per answer.

The request id is the caller's `X-Request-Id` when it is a sane token (1 to 128 letters, digits and `._:=-`), else a
new one (a random prefix of the process and a counter); it is echoed in the response and carried by every log line
written while the request is served. The log line holds the method, the route template (never the path or the query
string, which may carry anything), the status, the error code of an error answer, the duration, the client address
and the public id of the credential the guard verified: never a header value or a body.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from token_broker.observe.logs import AccessLine, access_writer, request_id
from token_broker.observe.metrics import Metrics
from token_broker.observe.route_templates import RouteTemplates

log = logging.getLogger("token_broker.access")
_SANE_ID = re.compile(rb"[A-Za-z0-9._:=-]{1,128}")
_ERROR_CODE = re.compile(r"[a-z_]{1,48}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


_ID_PREFIX = secrets.token_hex(6)  # this process's; ids need to be unique, not secret, so no syscall per request
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    """24 hex digits: a random prefix of this process, then a counter."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFF:012x}"


def incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"x-request-id":
            return value.decode("ascii") if _SANE_ID.fullmatch(value) else None
    return None


def error_code(body: bytes) -> str:
    """The `error` of a JSON error body, for the metrics' label (bounded to our codes' shape)."""
    try:
        code = json.loads(body).get("error") if len(body) <= 8192 else None
    except (ValueError, AttributeError):
        return "other"
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else "other"


class _Answer:
    """What the middleware learns of one answer as it is sent."""

    __slots__ = ("error", "read_body", "status")

    def __init__(self) -> None:
        self.status = 500
        self.error = ""
        self.read_body = False


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"content-type" and value.startswith(b"application/json") for name, value in headers)


class RequestLog:
    """Pure ASGI: no Request object, one small per-request object, the metrics counted in plain dicts
    (observe.request_metrics), and the log line's JSON built and written by the log writer thread (observe.logs), not
    on the event loop."""

    def __init__(self, app: ASGIApp, metrics: Metrics, templates: RouteTemplates | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates or RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = incoming_request_id(scope["headers"]) or new_request_id()
        rid_header = (b"x-request-id", rid.encode())
        root_path = scope.get("root_path", "")
        answer = _Answer()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.status = status = message["status"]
                headers = message["headers"] = [*message.get("headers", ()), rid_header]
                answer.read_body = status >= 400 and _is_json(headers)
            elif answer.read_body and message["type"] == "http.response.body":
                answer.read_body = False
                answer.error = error_code(message.get("body", b""))
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, root_path, answer, time.perf_counter() - started)
            request_id.reset(token)

    def _record(self, scope: Scope, root_path: str, answer: _Answer, seconds: float) -> None:
        route = self.templates.of(scope, root_path)
        method = scope["method"] if scope["method"] in _METHODS else "other"
        status = answer.status
        self.metrics.answered.count(route, method, status, answer.error, seconds)
        if not log.isEnabledFor(logging.INFO):
            return
        user = scope.get("user")
        credential = getattr(user, "identity", None) if getattr(user, "is_authenticated", False) else None
        client = scope.get("client")
        fields = {
            "method": method,
            "route": route,
            "status": status,
            "error": answer.error or None,
            "duration_ms": round(seconds * 1000, 2),
            "client": client[0] if client else None,
            "credential_id": credential,
        }
        writer = access_writer()
        if writer is not None:  # as `serve` logs: no LogRecord; the writer thread makes the JSON line
            writer.add_access(AccessLine(time.time(), request_id.get(), fields))
        else:
            log.info("request", extra=fields)
