"""How workspace API routes are declared: each names the scope it needs and how its OpenAPI operation reads; the
wrapper checks the workspace in the path and the scope before the handler runs, so handlers only do their work. The
route table is the one source of the document (`api.openapi`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from msgspec import Struct
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from token_broker.app_state import resources
from token_broker.errors import AccountMismatch, InsufficientScope, InvalidInput, PayloadTooLarge
from token_broker.guard.middleware import CredentialUser
from token_broker.services.verification import VerifiedCredential
from token_broker.wire import Body

Handler = Callable[[Request, VerifiedCredential], Awaitable[Response]]
MAX_BODY_BYTES = 64 * 1024
API_PREFIX = "/v1"


@dataclass(frozen=True)
class QueryInt:
    name: str
    minimum: int
    maximum: int


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says of a route beyond its method, path and scope."""

    summary: str
    status: int  # of a successful answer
    answers: type[Struct] | None  # the type of that answer's body (token_broker.wire), None for no body
    description: str
    body: type[Body] | None = None  # the type of the request body
    query: tuple[QueryInt | str, ...] = ()  # a bare name is a string parameter
    refusals: Mapping[int, str] = field(default_factory=dict)  # statuses particular to this route
    details: str | None = None  # the operation's description when the scope alone does not say it


class ApiRoute(Route):
    """A workspace API route that knows its method, its public path template, the scope it needs and its document."""

    def __init__(
        self,
        method: str,
        path: str,
        scope: str | None,
        endpoint: Callable[[Request], Awaitable[Response]],
        operation: Operation,
    ):
        super().__init__(path, endpoint, methods=[method], name=f"{method} {path}")
        self.method = method
        self.public_path = API_PREFIX + path
        self.scope = scope
        self.operation = operation


def endpoint_scopes(routes: list[BaseRoute]) -> dict[tuple[str, str], str | None]:
    """(method, public path template) -> the scope it needs, for every workspace API route."""
    return {(route.method, route.public_path): route.scope for route in routes if isinstance(route, ApiRoute)}


def api_route(method: str, path: str, scope: str | None, handler: Handler, operation: Operation) -> ApiRoute:
    public_path = API_PREFIX + path

    async def endpoint(request: Request) -> Response:
        user: CredentialUser = request.user
        credential = user.credential
        account_id = request.path_params.get("account_id")
        if account_id is not None and account_id != credential.account_id:
            raise AccountMismatch(
                "This key belongs to another workspace than the one in the path: "
                f"use the key's own workspace, {credential.account_id}."
            )
        if scope is not None and scope not in request.auth.scopes:
            raise InsufficientScope(f"This key does not have the {scope} scope needed for {method} {public_path}.")
        if credential.platform is not None:
            manifest = resources(request).manifests.get(credential.platform)
            if manifest is None or not manifest.allows(method, public_path):
                raise InsufficientScope(
                    f"The {credential.platform} integration does not use {method} {public_path}, "
                    "so its connection may not call it."
                )
        return await handler(request, credential)

    return ApiRoute(method, path, scope, endpoint, operation)


async def body_bytes(request: Request) -> bytes:
    """The request body, at most MAX_BODY_BYTES; PayloadTooLarge otherwise."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    return bytes(body)


async def json_object(request: Request, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, at most MAX_BODY_BYTES (an empty body is {} when allow_empty);
    PayloadTooLarge or InvalidInput naming `body` otherwise. The workspace API's typed bodies use `api.payloads`."""
    body = await body_bytes(request)
    if allow_empty and not body.strip():
        return {}
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, RecursionError):
        raise InvalidInput("body", "The body is not valid JSON: send a JSON object.") from None
    if not isinstance(parsed, dict):
        raise InvalidInput("body", "The body must be a JSON object.")
    return parsed


def query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 6:
        raise InvalidInput(name, f"{name} must be a whole number.")
    return int(raw)
