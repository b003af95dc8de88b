"""Hooks: thin handlers over services.webhook_subscriptions, run off the event loop (registration resolves the
target's name).

`POST` takes `{"event", "target_url"}` and nothing else (Zapier's `bundle.targetUrl` and Make's `url` are mapped to
`target_url` by the connectors); the answer, 201, carries the hook and its signing `secret`, shown this once.
"""

from __future__ import annotations

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from token_broker.api.scoped_routes import json_object
from token_broker.app_state import resources
from token_broker.errors import InvalidInput
from token_broker.services import webhook_subscriptions
from token_broker.services.verification import VerifiedCredential

FIELDS = ("event", "target_url")


def _client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def list_hooks(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    found = await to_thread.run_sync(webhook_subscriptions.list_hooks, database, credential)
    return JSONResponse({"data": [hook.to_json() for hook in found], "has_more": False})


async def get_hook(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    hook_id: str = request.path_params["hook_id"]
    found = await to_thread.run_sync(lambda: webhook_subscriptions.get_hook(database, credential, hook_id))
    return JSONResponse(found.to_json())


async def create_hook(request: Request, credential: VerifiedCredential) -> Response:
    state = resources(request)
    body = await json_object(request)
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InvalidInput(unknown[0], f"Unknown field {unknown[0]!r}: a hook takes event and target_url.")
    for name in FIELDS:
        if name not in body:
            raise InvalidInput(name, f"{name} is required: a hook takes event and target_url.")
    created = await to_thread.run_sync(
        lambda: webhook_subscriptions.create_hook(
            state.database, credential, body["event"], body["target_url"], state.settings, _client_address(request)
        )
    )
    return JSONResponse(created.to_json(), status_code=201, headers={"Cache-Control": "no-store"})


async def delete_hook(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    hook_id: str = request.path_params["hook_id"]
    await to_thread.run_sync(
        lambda: webhook_subscriptions.delete_hook(database, credential, hook_id, _client_address(request))
    )
    return Response(status_code=204)
