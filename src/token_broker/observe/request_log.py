"""The request middleware: a request id for every request, one JSON log line and the request metrics per answer.

The request id is the caller's `X-Request-Id` when it is a sane token (1 to 128 letters, digits and `._:=-`), else a
new random one; it is echoed in the response and carried by every log line written while the request is served. The
log line holds the method, the route template (never the path or the query string, which may carry anything), the
status, the error code of an error answer, the duration, the client address and the public id of the credential the
guard verified: never a header value or a body.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

from starlette.routing import Match, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from token_broker.observe.logs import request_id
from token_broker.observe.metrics import Metrics

log = logging.getLogger("token_broker.access")
_SANE_ID = re.compile(rb"[A-Za-z0-9._:=-]{1,128}")
_ERROR_CODE = re.compile(r"[a-z_]{1,48}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"x-request-id":
            return value.decode("ascii") if _SANE_ID.fullmatch(value) else None
    return None


def route_template(scope: Scope, root_path: str) -> str:
    """The template of the route that answered ("/v1/workspaces/{account_id}/links"), or "unmatched"."""
    route = scope.get("route")
    if isinstance(route, Mount):  # an answer given before the mounted router ran (the guard's refusals, a 404)
        route = _inner_route(route, scope)
    if not isinstance(route, Route):
        return UNMATCHED
    path: str = scope.get("root_path", "")[len(root_path) :] + route.path
    return path


def _inner_route(mount: Mount, scope: Scope) -> Route | None:
    app: Any = mount.app
    for _ in range(4):  # through the middleware in front of the mounted router
        if isinstance(app, Router):
            for route in app.routes:
                if isinstance(route, Route) and route.matches(scope)[0] is not Match.NONE:
                    return route
            return None
        app = getattr(app, "app", None)
    return None


def error_code(body: bytes) -> str:
    """The `error` of a JSON error body, for the metrics' label (bounded to our codes' shape)."""
    try:
        code = json.loads(body).get("error") if len(body) <= 8192 else None
    except (ValueError, AttributeError):
        return "other"
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else "other"


class RequestLog:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = incoming_request_id(scope["headers"]) or secrets.token_hex(12)
        root_path = scope.get("root_path", "")
        answer: dict[str, Any] = {"status": 500, "error": "", "read_body": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                answer["read_body"] = status >= 400 and any(
                    name == b"content-type" and value.startswith(b"application/json")
                    for name, value in message["headers"]
                )
            elif message["type"] == "http.response.body" and answer["read_body"]:
                answer["read_body"] = False
                answer["error"] = error_code(message.get("body", b""))
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, root_path, answer, time.perf_counter() - started)
            request_id.reset(token)

    def _record(self, scope: Scope, root_path: str, answer: dict[str, Any], seconds: float) -> None:
        route = route_template(scope, root_path)
        method = scope["method"] if scope["method"] in _METHODS else "other"
        status = answer["status"]
        self.metrics.requests.labels(route, method, str(status), answer["error"]).inc()
        self.metrics.request_seconds.labels(route).observe(seconds)
        if not log.isEnabledFor(logging.INFO):
            return
        user = scope.get("user")
        credential = getattr(user, "identity", None) if getattr(user, "is_authenticated", False) else None
        client = scope.get("client")
        log.info(
            "request",
            extra={
                "method": method,
                "route": route,
                "status": status,
                "error": answer["error"] or None,
                "duration_ms": round(seconds * 1000, 2),
                "client": client[0] if client else None,
                "credential_id": credential,
            },
        )
