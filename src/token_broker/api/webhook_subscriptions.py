"""Hooks: thin handlers over services.webhook_subscriptions, run off the event loop (registration resolves the
target's name).

`POST` takes `wire.HookCreate`, `{"event", "target_url"}` and nothing else (Zapier's `bundle.targetUrl` and Make's
`url` are mapped to `target_url` by the connectors); the answer, 201, is a `wire.CreatedHook`: the hook and its signing
`secret`, shown this once.
"""

from __future__ import annotations

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from token_broker import wire
from token_broker.api import payloads
from token_broker.api.payloads import JsonResponse
from token_broker.app_state import resources
from token_broker.services import webhook_subscriptions
from token_broker.services.verification import VerifiedCredential


def _client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def list_hooks(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    found = await to_thread.run_sync(webhook_subscriptions.list_hooks, database, credential)
    return JsonResponse(payloads.hook_list(found))


async def get_hook(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    hook_id: str = request.path_params["hook_id"]
    found = await to_thread.run_sync(lambda: webhook_subscriptions.get_hook(database, credential, hook_id))
    return JsonResponse(payloads.hook(found))


async def create_hook(request: Request, credential: VerifiedCredential) -> Response:
    state = resources(request)
    body = await payloads.read(request, wire.HookCreate)
    created = await to_thread.run_sync(
        lambda: webhook_subscriptions.create_hook(
            state.database, credential, body.event, body.target_url, state.settings, _client_address(request)
        )
    )
    return JsonResponse(payloads.created_hook(created), status_code=201, headers={"Cache-Control": "no-store"})


async def delete_hook(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    hook_id: str = request.path_params["hook_id"]
    await to_thread.run_sync(
        lambda: webhook_subscriptions.delete_hook(database, credential, hook_id, _client_address(request))
    )
    return Response(status_code=204)
