"""Organizations in the dashboard (/organizations, /organizations/{organization_id}, its governance view) and the admin
JSON API (/api/organizations...), and the shell's organization switcher. The rules are services/organizations.py's;
the governance view is services/governance.py's and only reads."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from token_broker.app_state import resources
from token_broker.errors import BrokerError, InvalidInput
from token_broker.services import directory, governance, organizations
from token_broker.services.connections import PLATFORM_NAMES
from token_broker.services.organizations import ORGANIZATION_ID
from token_broker.web.admin_api import answer, json_body, string_list
from token_broker.web.flash import flash, pop_flashes
from token_broker.web.frame import html_page, remember_active
from token_broker.web.pages import render, security_headers
from token_broker.web.sessions import actor_for, check_form_csrf, check_header_csrf, require_user

ORG = "/organizations/{organization_id}"


def _org_id(request: Request) -> str:
    value: str = request.path_params["organization_id"]
    return value


def _see_other(path: str) -> Response:
    return RedirectResponse(path, status_code=303, headers=security_headers())


# The admin JSON API.


async def api_list(request: Request) -> Response:
    user = await require_user(request)
    found = await to_thread.run_sync(
        organizations.organizations_of, resources(request).database, actor_for(request, user)
    )
    return answer({"data": [{"id": o.id, "name": o.name, "governs": o.governs} for o in found]})


async def api_create(request: Request) -> Response:
    user = await require_user(request)
    check_header_csrf(request)
    body = await json_body(request, ("name", "account_ids"))
    account_ids = string_list(body, "account_ids") or []
    actor, database = actor_for(request, user), resources(request).database
    made = await to_thread.run_sync(
        lambda: organizations.create_organization(database, actor, body.get("name"), account_ids=account_ids)
    )
    return answer(made.to_json(), status_code=201)


async def api_show(request: Request) -> Response:
    user = await require_user(request)
    actor, database, org_id = actor_for(request, user), resources(request).database, _org_id(request)
    return answer((await to_thread.run_sync(organizations.show_organization, database, actor, org_id)).to_json())


async def api_add_workspace(request: Request) -> Response:
    user = await require_user(request)
    check_header_csrf(request)
    body = await json_body(request, ("account_id",))
    actor, database, org_id = actor_for(request, user), resources(request).database, _org_id(request)
    view = await to_thread.run_sync(
        lambda: organizations.add_workspace(database, actor, org_id, body.get("account_id"))
    )
    return answer(view.to_json())


async def api_set_role(request: Request) -> Response:
    user = await require_user(request)
    check_header_csrf(request)
    body = await json_body(request, ("user", "role"))
    actor, database, org_id = actor_for(request, user), resources(request).database, _org_id(request)
    view = await to_thread.run_sync(
        lambda: organizations.set_role(database, actor, org_id, body.get("user"), body.get("role"))
    )
    return answer(view.to_json())


async def _governance_report(request: Request) -> tuple[governance.GovernanceFilter, governance.GovernanceReport]:
    """The governance report the query's filters ask for, as the signed-in user may see it."""
    user = await require_user(request)
    where = governance.GovernanceFilter.read(request.query_params)
    actor, database, org_id = actor_for(request, user), resources(request).database, _org_id(request)
    report = await to_thread.run_sync(lambda: governance.governance_report(database, actor, org_id, where))
    return where, report


async def api_governance(request: Request) -> Response:
    _, report = await _governance_report(request)
    return answer(report.to_json())


async def api_credentials(request: Request) -> Response:
    """Every credential of the organization's workspaces, each with its account_id; the governance filters apply."""
    where, report = await _governance_report(request)
    found = [item for item in report.credentials if where.platform in (None, item.credential.platform)]
    return answer({"data": [item.to_json() for item in found]})


# Pages.


async def _page(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> Response:
    user = await require_user(request)
    return render(request, template, {"user": user, "flashes": pop_flashes(request), **context}, status_code)


@html_page
async def organizations_page(request: Request) -> Response:
    user = await require_user(request)
    found = await to_thread.run_sync(
        organizations.organizations_of, resources(request).database, actor_for(request, user)
    )
    choices = await to_thread.run_sync(directory.workspace_choices, resources(request).database, user.id)
    owned = [choice for choice in choices if choice.role == "owner" and choice.organization_id is None]
    return await _page(request, "organizations.html", {"organizations": found, "owned": owned})


@html_page
async def create_from_form(request: Request) -> Response:
    user = await require_user(request)
    form = await check_form_csrf(request)
    raw = await request.form()
    account_ids = [value for value in raw.getlist("account_id") if isinstance(value, str)][:50]
    actor, database = actor_for(request, user), resources(request).database
    try:
        made = await to_thread.run_sync(
            lambda: organizations.create_organization(database, actor, form.get("name"), account_ids=account_ids)
        )
    except BrokerError as error:
        if error.status >= 500:
            raise
        flash(request, "error", error.message)
        return _see_other("/organizations")
    flash(request, "ok", f"The organization “{made.name}” was created; you are its owner.")
    return _see_other(f"/organizations/{made.id}")


@html_page
async def organization_page(request: Request) -> Response:
    user = await require_user(request)
    actor, database, org_id = actor_for(request, user), resources(request).database, _org_id(request)
    view = await to_thread.run_sync(organizations.show_organization, database, actor, org_id)
    remember_active(request, None, view.id)
    choices = await to_thread.run_sync(directory.workspace_choices, database, user.id)
    placeable = [choice for choice in choices if choice.role == "owner" and choice.organization_id is None]
    mine = {choice.account_id for choice in choices}
    context = {"organization": view, "placeable": placeable, "mine": mine, "roles": organizations.ROLE_CHOICES}
    return await _page(request, "organization.html", context)


async def _change(request: Request, change: Any) -> Response:
    user = await require_user(request)
    form = await check_form_csrf(request)
    actor, database, org_id = actor_for(request, user), resources(request).database, _org_id(request)
    await to_thread.run_sync(organizations.show_organization, database, actor, org_id)  # 404 page if not visible
    try:
        message = await to_thread.run_sync(lambda: change(database, actor, org_id, form))
    except BrokerError as error:
        if error.status >= 500:
            raise
        flash(request, "error", error.message)
    else:
        flash(request, "ok", message)
    return _see_other(f"/organizations/{org_id}")


def _add(database: Any, actor: Any, org_id: str, form: dict[str, Any]) -> str:
    account_id = form.get("account_id")
    organizations.add_workspace(database, actor, org_id, account_id)
    return f"{account_id} is now in this organization."


def _role(database: Any, actor: Any, org_id: str, form: dict[str, Any]) -> str:
    user, role = form.get("user"), form.get("role")
    organizations.set_role(database, actor, org_id, user, role)
    return f"{user} now has the role {role} in this organization."


@html_page
async def add_workspace_form(request: Request) -> Response:
    return await _change(request, _add)


@html_page
async def set_role_form(request: Request) -> Response:
    return await _change(request, _role)


@html_page
async def governance_page(request: Request) -> Response:
    user = await require_user(request)
    actor, database, org_id = actor_for(request, user), resources(request).database, _org_id(request)
    error = None
    try:
        where = governance.GovernanceFilter.read(request.query_params)
    except InvalidInput as refused:
        error, where = refused.message, governance.GovernanceFilter()
    report = await to_thread.run_sync(lambda: governance.governance_report(database, actor, org_id, where))
    remember_active(request, None, report.organization_id)
    context = {
        "report": report,
        "where": where,
        "filtering": bool(where.as_query()),
        "error": error,
        "platform_names": PLATFORM_NAMES,
        "usage_filters": (("never_used", "Never used"), ("unused_90_days", "Unused for 90 days or more")),
    }
    return await _page(request, "governance.html", context, status_code=422 if error else 200)


@html_page
async def switch_organization(request: Request) -> Response:
    """The shell's organization switcher: makes the organization active and opens the user's first workspace in it
    (or the organization's page, for someone who governs it without a workspace role)."""
    user = await require_user(request)
    wanted = request.query_params.get("organization_id", "")
    if ORGANIZATION_ID.fullmatch(wanted) is None:
        return _see_other("/")
    database = resources(request).database
    choices = await to_thread.run_sync(directory.workspace_choices, database, user.id)
    first = next((choice for choice in choices if choice.organization_id == wanted), None)
    if first is not None:
        remember_active(request, first.account_id, wanted)
        return _see_other(f"/workspaces/{first.account_id}/api-access")
    return _see_other(f"/organizations/{wanted}")  # its page answers 404 to anyone who does not govern it


async def api_session_context(request: Request) -> Response:
    """The session's active organization and workspace (for the panel's scripts)."""
    await require_user(request)
    session: dict[str, Any] = request.session
    return JSONResponse(
        {"organization_id": session.get("org"), "account_id": session.get("ws")}, headers={"Cache-Control": "no-store"}
    )


ROUTES: list[BaseRoute] = [
    Route("/organizations", organizations_page, methods=["GET"]),
    Route("/organizations", create_from_form, methods=["POST"]),
    Route("/organizations/switch", switch_organization, methods=["GET"]),
    Route(ORG, organization_page, methods=["GET"]),
    Route(f"{ORG}/workspaces", add_workspace_form, methods=["POST"]),
    Route(f"{ORG}/roles", set_role_form, methods=["POST"]),
    Route(f"{ORG}/governance", governance_page, methods=["GET"]),
    Route("/api/session/active", api_session_context, methods=["GET"]),
    Route("/api/organizations", api_list, methods=["GET"]),
    Route("/api/organizations", api_create, methods=["POST"]),
    Route("/api/organizations/{organization_id}", api_show, methods=["GET"]),
    Route("/api/organizations/{organization_id}/workspaces", api_add_workspace, methods=["POST"]),
    Route("/api/organizations/{organization_id}/roles", api_set_role, methods=["POST"]),
    Route("/api/organizations/{organization_id}/governance", api_governance, methods=["GET"]),
    Route("/api/orgs/{organization_id}/credentials", api_credentials, methods=["GET"]),
]
