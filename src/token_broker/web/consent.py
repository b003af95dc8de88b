"""GET and POST /oauth/authorize: sign-in, then the consent page, then a code (or access_denied) for the platform.

An authorization request that fails before its client and redirect URI are known good is answered here with an
error page, never a redirect (RFC 6749 4.1.2.1); once they are, errors go back to the platform with `state` and `iss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from anyio import to_thread
from authlib.oauth2.rfc6749.errors import InsecureTransportError, OAuth2Error
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from token_broker.app_state import resources
from token_broker.oauth.models import Approval, BrokerClient
from token_broker.oauth.request_adapter import BadRequest, BrokerRequest, build_request
from token_broker.oauth.server import BrokerAuthorizationServer, current_session
from token_broker.oauth.token_routes import issuer_of, server_of
from token_broker.scopes import SCOPE_DESCRIPTIONS
from token_broker.services import workspaces
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, record
from token_broker.services.connections import PLATFORM_NAMES
from token_broker.services.workspaces import MANAGING_ROLES, MembershipView, SignedInUser
from token_broker.store.models import Workspace
from token_broker.web.pages import render
from token_broker.web.sessions import actor_for, check_form_csrf, signed_in_user

AUTHORIZE_PARAMETERS = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
                        "code_challenge_method")  # fmt: skip


@dataclass(frozen=True)
class ConsentRequest:
    """What the consent page tells the user: who asks, for what, where the code goes, and which workspaces it may
    connect (a workspace's own client: that workspace alone)."""

    platform: str
    abilities: list[str]
    redirect_origin: str
    redirect_host: str
    registered_by: str | None  # the registering workspace's name, for a workspace's own (n8n) client
    only_account_id: str | None

    def allows(self, account_id: str) -> bool:
        return self.only_account_id is None or account_id == self.only_account_id


def _error_page(request: Request, description: str, status: int = 400) -> Response:
    return render(request, "oauth_error.html", {"description": description}, status_code=status)


def _to_login(request: Request, parameters: list[tuple[str, str]]) -> Response:
    target = "/oauth/authorize?" + urlencode(parameters)
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _consent(server: BrokerAuthorizationServer, oauth_request: BrokerRequest, user: SignedInUser) -> ConsentRequest:
    server.get_consent_grant(oauth_request, end_user=user)
    return _describe(oauth_request)


def _describe(oauth_request: BrokerRequest) -> ConsentRequest:
    """The consent request of a validated authorization request (its client known)."""
    client: BrokerClient = oauth_request.client
    parts = urlsplit(oauth_request.payload.redirect_uri)
    owner = None if client.row.workspace_id is None else current_session().get_one(Workspace, client.row.workspace_id)
    host = parts.hostname or ""
    return ConsentRequest(
        platform=PLATFORM_NAMES[client.row.platform],
        abilities=[SCOPE_DESCRIPTIONS[scope] for scope in oauth_request.scope.split()],
        redirect_origin=f"{parts.scheme}://{parts.netloc}",
        redirect_host=host if parts.port is None else f"{host}:{parts.port}",
        registered_by=None if owner is None else owner.name,
        only_account_id=None if owner is None else owner.account_id,
    )


def _no_workspace_page(request: Request, consent: ConsentRequest) -> Response:
    if consent.registered_by is None:
        return _error_page(request, "Only a workspace owner or admin can connect a platform to a workspace.", 403)
    return _error_page(
        request,
        f"This {consent.platform} instance was registered by the workspace “{consent.registered_by}” and can connect "
        f"only to it: only an owner or admin of “{consent.registered_by}” can approve this request.",
        403,
    )


async def _managed_workspaces(request: Request, user: SignedInUser) -> list[MembershipView]:
    memberships = await to_thread.run_sync(workspaces.memberships_of, resources(request).database, user.id)
    return [membership for membership in memberships if membership.role in MANAGING_ROLES]


async def authorize_page(request: Request) -> Response:
    parameters = list(request.query_params.multi_items())
    user = await signed_in_user(request)
    if user is None:
        return _to_login(request, parameters)
    try:
        oauth_request = build_request("GET", issuer_of(request), "/oauth/authorize", {}, parameters, False)
    except (BadRequest, InsecureTransportError) as error:
        return _error_page(request, str(error) if isinstance(error, BadRequest) else "Use https.")
    server, issuer = server_of(request), issuer_of(request)
    try:
        consent = await to_thread.run_sync(
            lambda: server.run(issuer, lambda: _consent(server, oauth_request, user), write=False)
        )
    except OAuth2Error as error:
        return await _error_response(request, server, oauth_request, error)
    allowed = [m for m in await _managed_workspaces(request, user) if consent.allows(m.account_id)]
    if not allowed:
        return _no_workspace_page(request, consent)
    hidden = [(name, value) for name, value in parameters if name in AUTHORIZE_PARAMETERS]
    return render(
        request,
        "consent.html",
        {"user": user, "consent": consent, "hidden": hidden, "workspaces": allowed},
        form_action=f"'self' {consent.redirect_origin}",
    )


async def _error_response(
    request: Request, server: BrokerAuthorizationServer, oauth_request: BrokerRequest, error: OAuth2Error
) -> Response:
    if error.redirect_uri:
        issuer = issuer_of(request)
        response: Response = await to_thread.run_sync(
            lambda: server.run(issuer, lambda: server.handle_error_response(oauth_request, error))
        )
        return response
    return _error_page(request, error.description or error.error)


def _audit_forged_approval(actor: Actor, client: BrokerClient, target: Workspace) -> None:
    """An approval naming a workspace the client may not serve cannot come from the consent page: someone posted it
    by hand, perhaps to take a code for a workspace they were not offered. Both workspaces' admins see the attempt."""
    assert client.row.workspace_id is not None  # only a workspace's own client serves a single workspace
    for workspace_id in dict.fromkeys((client.row.workspace_id, target.id)):
        entry = AuditEntry(
            action="oauth.consent_refused",
            workspace_id=workspace_id,
            target_id=client.row.client_id,
            details={"platform": client.row.platform, "account_id": target.account_id},
        )
        record(current_session(), actor, entry, "refused", "workspace_mismatch")


async def authorize_decision(request: Request) -> Response:
    form: dict[str, Any] = await check_form_csrf(request)
    parameters = [(name, str(form[name])) for name in AUTHORIZE_PARAMETERS if name in form]
    user = await signed_in_user(request)
    if user is None:
        return _to_login(request, parameters)
    approve = form.get("decision") == "approve"
    account_id = str(form.get("account_id", ""))
    if approve and account_id not in {m.account_id for m in await _managed_workspaces(request, user)}:
        return _error_page(request, "Choose a workspace where you are an owner or admin.", 403)
    try:
        oauth_request = build_request("GET", issuer_of(request), "/oauth/authorize", {}, parameters, False)
    except (BadRequest, InsecureTransportError) as error:
        return _error_page(request, str(error) if isinstance(error, BadRequest) else "Use https.")
    server, issuer = server_of(request), issuer_of(request)
    actor = actor_for(request, user)

    def decide() -> Response | ConsentRequest:
        grant = server.get_consent_grant(oauth_request, end_user=user)
        approval = None
        if approve:
            consent = _describe(oauth_request)
            workspace = workspaces.find_workspace(current_session(), account_id)
            if not consent.allows(account_id):
                _audit_forged_approval(actor, oauth_request.client, workspace)
                return consent  # a forged account_id for a workspace's own client: no code is made
            approval = Approval(user_id=user.id, label=user.public_id, workspace_id=workspace.id)
        response: Response = server.create_authorization_response(oauth_request, approval, grant)
        return response

    try:
        response = await to_thread.run_sync(lambda: server.run(issuer, decide))
    except OAuth2Error as error:
        return await _error_response(request, server, oauth_request, error)
    if isinstance(response, ConsentRequest):
        return _no_workspace_page(request, response)
    if response.status_code == 302:
        response.status_code = 303  # the answer to a form POST: the browser follows it with a GET
    return response
