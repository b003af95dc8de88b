"""What every workspace page needs around its content: who is signed in, the workspace and their role in it, the
switcher's choices, and pending flashes; and how a page answers a refusal (a page, never a stack trace)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any
from urllib.parse import quote

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from token_broker.app_state import resources
from token_broker.errors import BrokerError, CsrfFailed, Forbidden, NotFound, NotSignedIn
from token_broker.services import directory, organizations
from token_broker.services.actors import Actor
from token_broker.services.directory import WorkspaceChoice
from token_broker.services.workspaces import MANAGING_ROLES, SignedInUser
from token_broker.web.flash import pop_flashes
from token_broker.web.pages import render, security_headers
from token_broker.web.sessions import actor_for, require_user, signed_in_user

PageHandler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Frame:
    user: SignedInUser
    actor: Actor
    current: WorkspaceChoice
    choices: list[WorkspaceChoice]
    organizations: list[organizations.OrganizationChoice] = field(default_factory=list)

    @property
    def account_id(self) -> str:
        return self.current.account_id

    @property
    def can_manage(self) -> bool:
        return self.current.role in MANAGING_ROLES

    def context(self, request: Request, section: str) -> dict[str, Any]:
        """The layout's part of a page's template context."""
        grouped = [
            (organization, list(choices))
            for organization, choices in groupby(
                sorted(self.choices, key=lambda c: (c.organization or "", c.name.lower())),
                key=lambda c: c.organization,
            )
        ]
        return {
            "user": self.user,
            "current": self.current,
            "workspace_groups": grouped,
            "can_manage": self.can_manage,
            "organization_choices": self.organizations,
            "section": section,
            "flashes": pop_flashes(request),
        }


async def workspace_frame(request: Request) -> Frame:
    """The signed-in user's frame for the workspace in the path: NotFound where they have no role in it."""
    user = await require_user(request)
    choices = await to_thread.run_sync(directory.workspace_choices, resources(request).database, user.id)
    account_id = request.path_params["account_id"]
    current = next((choice for choice in choices if choice.account_id == account_id), None)
    if current is None:
        raise NotFound(f"No workspace {account_id!r} is visible to you.")
    actor = actor_for(request, user)
    governed = await to_thread.run_sync(organizations.organizations_of, resources(request).database, actor)
    remember_active(request, current.account_id, current.organization_id)
    return Frame(user=user, actor=actor, current=current, choices=choices, organizations=governed)


def remember_active(request: Request, account_id: str | None, organization_id: str | None) -> None:
    """The session's active workspace and organization: the ones shown last, or chosen in the switcher."""
    if account_id is not None:
        request.session["ws"] = account_id
    if organization_id is not None or account_id is not None:
        request.session["org"] = organization_id


def html_page(handler: PageHandler) -> PageHandler:
    """A dashboard page: sends visitors who are not signed in to the login page, and answers the refusals a page
    can meet (not found, forbidden, stale form) with a page saying so."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except NotSignedIn:
            target = request.url.path if request.method == "GET" else "/"
            if request.method == "GET" and request.url.query:
                target += "?" + request.url.query
            return RedirectResponse(f"/login?next={quote(target, safe='/')}", 303, headers=security_headers())
        except (NotFound, Forbidden, CsrfFailed) as error:
            return await error_page(request, error)

    return endpoint


async def error_page(request: Request, error: BrokerError) -> Response:
    titles = {404: "Not found", 403: "Not allowed"}
    return render(
        request,
        "error.html",
        {"user": await signed_in_user(request), "title": titles.get(error.status, "Refused"), "message": error.message},
        status_code=error.status,
    )
