"""The admin JSON API, the panel's twin: the same services behind the session cookie.

Not signed in: 401. Unsafe methods need the X-CSRF-Token header (403 csrf_failed). A role that may not act: 403
forbidden; a workspace the user has no role in, or an id of another workspace: 404 not_found. Errors are
{"error", "message"}, turned into responses by the app's handler for /api/ paths.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from token_broker.api.scoped_routes import json_object
from token_broker.app_state import resources
from token_broker.errors import Forbidden, InvalidInput, NotFound
from token_broker.services import (
    audit_reading,
    client_lifecycle,
    clients,
    connections,
    directory,
    keys,
    leak_settings,
    webhook_overview,
)
from token_broker.services.actors import Actor
from token_broker.services.keys import KeyRequest
from token_broker.services.workspaces import MANAGING_ROLES
from token_broker.web.sessions import actor_for, check_header_csrf, require_user

PREFIX = "/api/workspaces/{account_id}"
CLIENT_FIELDS = ("client_id", "platform", "workspace", "redirect_uris", "status", "created_at")  # as `client list`
KEY_FIELDS = ("name", "scopes", "expires_in", "allowed_ips", "rate_limits")

Handler = Callable[[Request, Actor, str], Awaitable[Response]]


def admin_route(method: str, path: str, handler: Handler, manage: bool) -> Route:
    """A route of this API. Signed in (401), then the CSRF header on unsafe methods (403 csrf_failed).

    Roles: reads are checked here first (404 without a role, 403 forbidden for a read only owners and admins may
    make), so that a refusal comes before any complaint about the query. Changes are refused by their services,
    which check the role inside the change's transaction and write the refused attempt's audit row."""

    async def endpoint(request: Request) -> Response:
        user = await require_user(request)
        account_id = request.path_params["account_id"]
        if method == "GET":
            role = await to_thread.run_sync(directory.role_of, resources(request).database, user.id, account_id)
            if role is None:
                raise NotFound(f"No workspace {account_id!r} is visible to you.")
            if manage and role not in MANAGING_ROLES:
                raise Forbidden(f"Your role in this workspace is {role}; only owners and admins can see this.")
        else:
            check_header_csrf(request)
        return await handler(request, actor_for(request, user), account_id)

    return Route(PREFIX + path, endpoint, methods=[method], name=f"admin {method} {path}")


def answer(body: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})


async def json_body(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object with only the allowed fields; an empty body is an empty object."""
    parsed = await json_object(request, allow_empty=True)
    unknown = sorted(set(parsed) - set(allowed))
    if unknown:
        raise InvalidInput(unknown[0], f"Unknown field {unknown[0]!r}: this request takes {', '.join(allowed)}.")
    return parsed


def string_list(body: dict[str, Any], name: str) -> list[Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidInput(name, f"{name} must be a list of strings, or null.")
    return value


class Shown(Protocol):
    def to_json(self) -> Mapping[str, object]: ...


async def answer_change(
    request: Request, fields: tuple[str, ...], change: Callable[[dict[str, Any]], Shown]
) -> Response:
    """A change to the thing the path names: the body (only `fields`; empty is fine) given to the service's change,
    run off the event loop, and what the change returns, as JSON."""
    body = await json_body(request, fields)
    changed = await to_thread.run_sync(change, body)
    return answer(changed.to_json())


async def list_keys(request: Request, actor: Actor, account_id: str) -> Response:
    found = await to_thread.run_sync(keys.list_keys, resources(request).database, actor, account_id)
    return answer({"data": [view.to_json() for view in found]})


async def create_key(request: Request, actor: Actor, account_id: str) -> Response:
    body = await json_body(request, KEY_FIELDS)
    key_request = KeyRequest(
        name=body.get("name"),
        scopes=string_list(body, "scopes"),
        expires_in=body.get("expires_in"),
        allowed_ips=string_list(body, "allowed_ips"),
        rate_limits=string_list(body, "rate_limits"),
    )
    state = resources(request)
    issued = await to_thread.run_sync(keys.create_key, state.database, state.hasher, actor, account_id, key_request)
    return answer(issued.to_json(), status_code=201)


async def rotate_key(request: Request, actor: Actor, account_id: str) -> Response:
    credential_id, state = request.path_params["credential_id"], resources(request)
    return await answer_change(
        request,
        ("grace_seconds",),
        lambda body: keys.rotate_key(
            state.database, state.hasher, actor, credential_id, body.get("grace_seconds"), account_id=account_id
        ),
    )


async def revoke_key(request: Request, actor: Actor, account_id: str) -> Response:
    credential_id, database = request.path_params["credential_id"], resources(request).database
    return await answer_change(
        request, (), lambda _: keys.revoke_key(database, actor, credential_id, account_id=account_id)
    )


async def list_connections(request: Request, actor: Actor, account_id: str) -> Response:
    found = await to_thread.run_sync(connections.list_connections, resources(request).database, actor, account_id)
    return answer({"data": [view.to_json() for view in found]})


async def disconnect(request: Request, actor: Actor, account_id: str) -> Response:
    connection_id, database = request.path_params["connection_id"], resources(request).database
    return await answer_change(
        request, (), lambda _: connections.disconnect(database, actor, connection_id, account_id=account_id)
    )


async def register_client(request: Request, actor: Actor, account_id: str) -> Response:
    body = await json_body(request, ("platform", "redirect_uri"))
    # Wrong types become empty values, which the service refuses (naming the field) after checking the role.
    given_platform, given_uri = body.get("platform"), body.get("redirect_uri")
    platform = given_platform if isinstance(given_platform, str) else ""
    redirect_uri = given_uri if isinstance(given_uri, str) else ""
    database = resources(request).database
    registered = await to_thread.run_sync(
        lambda: clients.register_client(database, actor, platform, [redirect_uri], account_id=account_id)
    )
    return answer(registered.to_json(), status_code=201)


async def list_clients(request: Request, actor: Actor, account_id: str) -> Response:
    database = resources(request).database
    found = await to_thread.run_sync(client_lifecycle.list_clients, database, actor, account_id)
    return answer({"data": [{name: view.to_json()[name] for name in CLIENT_FIELDS} for view in found]})


async def revoke_client(request: Request, actor: Actor, account_id: str) -> Response:
    client_id, database = request.path_params["client_id"], resources(request).database
    return await answer_change(
        request, (), lambda _: client_lifecycle.revoke_client(database, actor, client_id, account_id=account_id)
    )


async def rotate_client(request: Request, actor: Actor, account_id: str) -> Response:
    client_id, database = request.path_params["client_id"], resources(request).database
    return await answer_change(
        request,
        ("grace_seconds",),
        lambda body: client_lifecycle.rotate_client_secret(
            database, actor, client_id, body.get("grace_seconds"), account_id=account_id
        ),
    )


async def list_hooks(request: Request, actor: Actor, account_id: str) -> Response:
    found = await to_thread.run_sync(webhook_overview.hooks_of, resources(request).database, actor, account_id)
    return answer({"data": [item.to_json() for item in found]})


async def read_audit(request: Request, actor: Actor, account_id: str) -> Response:
    query = request.query_params
    where = audit_reading.validate_filter(query.get("action"), query.get("outcome"), query.get("actor"))
    before_id, limit = audit_reading.validate_page(query.get("before"), query.get("limit"))
    page = await to_thread.run_sync(
        lambda: audit_reading.read_audit(resources(request).database, actor, account_id, where, before_id, limit)
    )
    return answer({"data": [event.to_json() for event in page.events], "has_more": page.has_more})


async def read_settings(request: Request, actor: Actor, account_id: str) -> Response:
    choice = await to_thread.run_sync(leak_settings.leak_response, resources(request).database, actor, account_id)
    return answer({"leak_response": choice})


async def change_settings(request: Request, actor: Actor, account_id: str) -> Response:
    body = await json_body(request, ("leak_response",))
    database = resources(request).database
    choice = await to_thread.run_sync(
        lambda: leak_settings.set_leak_response(database, actor, account_id, body.get("leak_response"))
    )
    return answer({"leak_response": choice})


ROUTES = [
    admin_route("GET", "/keys", list_keys, manage=False),
    admin_route("POST", "/keys", create_key, manage=True),
    admin_route("POST", "/keys/{credential_id}/rotate", rotate_key, manage=True),
    admin_route("POST", "/keys/{credential_id}/revoke", revoke_key, manage=True),
    admin_route("GET", "/connections", list_connections, manage=False),
    admin_route("POST", "/connections/{connection_id}/disconnect", disconnect, manage=True),
    admin_route("POST", "/clients", register_client, manage=True),
    admin_route("GET", "/clients", list_clients, manage=False),
    admin_route("POST", "/clients/{client_id}/revoke", revoke_client, manage=True),
    admin_route("POST", "/clients/{client_id}/rotate", rotate_client, manage=True),
    admin_route("GET", "/hooks", list_hooks, manage=False),
    admin_route("GET", "/audit", read_audit, manage=True),
    admin_route("GET", "/settings", read_settings, manage=False),
    admin_route("PATCH", "/settings", change_settings, manage=True),
]
