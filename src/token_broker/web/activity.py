"""Recent activity of a workspace's links, in the panel (/workspaces/{account_id}/activity, owners and admins) and the
admin JSON API (GET /api/workspaces/{account_id}/activity, any role of the workspace): filterable by credential, with a
disconnect button beside each platform connection's changes."""

from __future__ import annotations

from urllib.parse import urlencode

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from token_broker.app_state import resources
from token_broker.errors import Forbidden, InvalidInput
from token_broker.services import keys, link_activity
from token_broker.services.actors import Actor
from token_broker.services.connections import PLATFORM_NAMES
from token_broker.web.admin_api import admin_route, answer
from token_broker.web.frame import html_page, workspace_frame
from token_broker.web.pages import render, security_headers
from token_broker.web.panel import disconnect_with_flash
from token_broker.web.sessions import check_form_csrf

WORKSPACE = "/workspaces/{account_id}"
PAGE_SIZE = 25


async def api_activity(request: Request, actor: Actor, account_id: str) -> Response:
    query = request.query_params
    credential, before_id, limit = link_activity.validate_query(
        query.get("credential"), query.get("before"), query.get("limit")
    )
    database = resources(request).database
    page = await to_thread.run_sync(
        lambda: link_activity.recent_activity(database, actor, account_id, credential, before_id, limit)
    )
    return answer({"data": [item.to_contract_json() for item in page.items], "has_more": page.has_more})


@html_page
async def activity_page(request: Request) -> Response:
    frame = await workspace_frame(request)
    if not frame.can_manage:
        raise Forbidden(
            f"Your role in this workspace is {frame.current.role}; only owners and admins review its activity."
        )
    query = request.query_params
    error = None
    try:
        credential, before_id, _ = link_activity.validate_query(query.get("credential"), query.get("before"), None)
    except InvalidInput as refused:
        error, credential, before_id = refused.message, None, None
    database = resources(request).database
    page = await to_thread.run_sync(
        lambda: link_activity.recent_activity(database, frame.actor, frame.account_id, credential, before_id, PAGE_SIZE)
    )
    credentials = await to_thread.run_sync(keys.list_keys, database, frame.actor, frame.account_id)
    older = None
    if page.has_more and page.items:
        older = "?" + urlencode({**({"credential": credential} if credential else {}), "before": page.items[-1].id})
    return render(
        request,
        "activity.html",
        {
            **frame.context(request, "activity"),
            "page": page,
            "credentials": credentials,
            "chosen": credential,
            "older": older,
            "error": error,
            "platform_names": PLATFORM_NAMES,
        },
        status_code=422 if error else 200,
    )


@html_page
async def disconnect_from_activity(request: Request) -> Response:
    frame = await workspace_frame(request)
    form = await check_form_csrf(request)
    await disconnect_with_flash(
        request, frame, lambda view: f"{PLATFORM_NAMES[view.platform]} was disconnected: its token stops working now."
    )
    credential = form.get("credential")
    target = f"/workspaces/{frame.account_id}/activity"
    if isinstance(credential, str) and credential.isalnum() and len(credential) == 12:
        target += "?" + urlencode({"credential": credential})
    return RedirectResponse(target, status_code=303, headers=security_headers())


ROUTES: list[BaseRoute] = [
    Route(f"{WORKSPACE}/activity", activity_page, methods=["GET"]),
    Route(f"{WORKSPACE}/activity/connections/{{connection_id}}/disconnect", disconnect_from_activity, methods=["POST"]),
    admin_route("GET", "/activity", api_activity, manage=False),
]
