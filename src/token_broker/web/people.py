"""The people of a workspace, in the panel (/workspaces/{account_id}/people) and the admin JSON API
(/api/workspaces/{account_id}/members): list, remove, change role. The rules are services/members.py's."""

from __future__ import annotations

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from token_broker.app_state import resources
from token_broker.errors import Conflict, Forbidden, InvalidInput, NotFound
from token_broker.services import members
from token_broker.services.actors import Actor
from token_broker.store.models import ROLES
from token_broker.web.admin_api import admin_route, answer, answer_change, json_body
from token_broker.web.flash import flash
from token_broker.web.frame import Frame, html_page, workspace_frame
from token_broker.web.pages import render, security_headers
from token_broker.web.sessions import check_form_csrf

WORKSPACE = "/workspaces/{account_id}"


async def api_list(request: Request, actor: Actor, account_id: str) -> Response:
    found = await to_thread.run_sync(members.list_members, resources(request).database, actor, account_id)
    return answer({"data": [view.to_json() for view in found]})


async def api_remove(request: Request, actor: Actor, account_id: str) -> Response:
    await json_body(request, ())
    user = request.path_params["user_id"]
    database = resources(request).database
    view = await to_thread.run_sync(lambda: members.remove_member(database, actor, account_id, user))
    return answer({**view.to_json(), "status": "removed"})


async def api_role(request: Request, actor: Actor, account_id: str) -> Response:
    user, database = request.path_params["user_id"], resources(request).database
    return await answer_change(
        request, ("role",), lambda body: members.change_role(database, actor, account_id, user, body.get("role"))
    )


async def api_delete(request: Request, actor: Actor, account_id: str) -> Response:
    user = request.path_params["user_id"]
    database = resources(request).database
    await to_thread.run_sync(lambda: members.remove_member(database, actor, account_id, user))
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


API_ROUTES: list[BaseRoute] = [
    admin_route("GET", "/members", api_list, manage=False),
    admin_route("PATCH", "/members/{user_id}", api_role, manage=True),
    admin_route("DELETE", "/members/{user_id}", api_delete, manage=True),
    # The first paths of this API, kept as aliases.
    admin_route("POST", "/members/{user_id}/remove", api_remove, manage=True),
    admin_route("POST", "/members/{user_id}/role", api_role, manage=True),
]


def _back(frame: Frame) -> Response:
    return RedirectResponse(f"/workspaces/{frame.account_id}/people", status_code=303, headers=security_headers())


@html_page
async def people_page(request: Request) -> Response:
    frame = await workspace_frame(request)
    found = await to_thread.run_sync(members.list_members, resources(request).database, frame.actor, frame.account_id)
    context = {**frame.context(request, "people"), "members": found, "roles": ROLES, "me": frame.user.public_id}
    return render(request, "people.html", context)


@html_page
async def remove(request: Request) -> Response:
    frame = await workspace_frame(request)
    await check_form_csrf(request)
    user = request.path_params["user_id"]
    database = resources(request).database
    try:
        view = await to_thread.run_sync(lambda: members.remove_member(database, frame.actor, frame.account_id, user))
    except (Conflict, InvalidInput, Forbidden, NotFound) as error:
        flash(request, "error", error.message)
        return _back(frame)
    if view.user_id == frame.user.public_id:
        return RedirectResponse("/login", status_code=303, headers=security_headers())
    flash(request, "ok", f"{view.email} was removed; the keys and connections they made keep working.")
    return _back(frame)


@html_page
async def change_role(request: Request) -> Response:
    frame = await workspace_frame(request)
    form = await check_form_csrf(request)
    user = request.path_params["user_id"]
    role = form.get("role")
    database = resources(request).database
    try:
        view = await to_thread.run_sync(
            lambda: members.change_role(database, frame.actor, frame.account_id, user, role)
        )
    except (Conflict, InvalidInput, Forbidden, NotFound) as error:
        flash(request, "error", error.message)
        return _back(frame)
    flash(request, "ok", f"{view.email} is now {view.role}.")
    return _back(frame)


PAGE_ROUTES: list[BaseRoute] = [
    Route(f"{WORKSPACE}/people", people_page, methods=["GET"]),
    Route(f"{WORKSPACE}/people/{{user_id}}/remove", remove, methods=["POST"]),
    Route(f"{WORKSPACE}/people/{{user_id}}/role", change_role, methods=["POST"]),
]
ROUTES = [*PAGE_ROUTES, *API_ROUTES]
