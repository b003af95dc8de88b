"""Links and their analytics: thin handlers over services.links, run off the event loop; bodies are `wire` Structs
decoded and built by `api.payloads`."""

from __future__ import annotations

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from token_broker import wire
from token_broker.api import payloads
from token_broker.api.payloads import JsonResponse
from token_broker.api.scoped_routes import query_int
from token_broker.app_state import resources
from token_broker.services import links
from token_broker.services.link_analytics import link_analytics as analytics_of
from token_broker.services.verification import VerifiedCredential


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _link_id(request: Request) -> str:
    link_id: str = request.path_params["link_id"]
    return link_id


async def list_links(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    limit = query_int(request, "limit", 50)
    starting_after = request.query_params.get("starting_after")
    found, has_more = await to_thread.run_sync(
        lambda: links.list_links(database, credential.workspace_id, limit=limit, starting_after=starting_after)
    )
    return JsonResponse(payloads.link_list(found, has_more))


async def get_link(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    link = await to_thread.run_sync(links.get_link, database, credential.workspace_id, _link_id(request))
    return JsonResponse(wire.link(link))


async def create_link(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    body = await payloads.read(request, wire.LinkCreate)
    link = await to_thread.run_sync(
        lambda: links.create_link(
            database,
            credential.workspace_id,
            credential.id,
            body.destination,
            body.slug,
            source_credential_id=credential.id,
            expires_at=body.expires_at,
            client_address=_address(request),
        )
    )
    return JsonResponse(wire.link(link), status_code=201)


async def update_link(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    changes = payloads.given(await payloads.read(request, wire.LinkUpdate))
    link_id = _link_id(request)
    link = await to_thread.run_sync(
        lambda: links.update_link(
            database,
            credential.workspace_id,
            link_id,
            changes,
            source_credential_id=credential.id,
            client_address=_address(request),
        )
    )
    return JsonResponse(wire.link(link))


async def delete_link(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    link_id = _link_id(request)
    await to_thread.run_sync(
        lambda: links.delete_link(
            database,
            credential.workspace_id,
            link_id,
            source_credential_id=credential.id,
            client_address=_address(request),
        )
    )
    return Response(status_code=204)


async def link_analytics(request: Request, credential: VerifiedCredential) -> Response:
    database = resources(request).database
    days = query_int(request, "days", 30)
    link_id = _link_id(request)
    report = await to_thread.run_sync(lambda: analytics_of(database, credential.workspace_id, link_id, days))
    return JsonResponse(payloads.analytics(report))
