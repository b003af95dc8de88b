"""The API access panel: a workspace's keys and partner install tokens, connections, n8n instances, and hooks with
their latest deliveries; and the forms owners and admins use to change them. Plain forms that POST and redirect back
with a flash; a new secret is shown by the response to the POST that made it (never carried in the session, never
shown again)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from token_broker.app_state import resources
from token_broker.errors import Conflict, InvalidInput
from token_broker.policy import DEFAULT_GRACE_SECONDS
from token_broker.scopes import SCOPE_DESCRIPTIONS
from token_broker.services import (
    admin_notices,
    client_lifecycle,
    clients,
    connections,
    directory,
    keys,
    leak_settings,
    members,
    webhook_overview,
)
from token_broker.services.actors import Actor
from token_broker.services.admin_notices import Notice
from token_broker.services.clients import N8N_CALLBACK_PATH
from token_broker.services.connections import PLATFORM_NAMES, ConnectionView
from token_broker.services.directory import ClientView
from token_broker.services.keys import CredentialView
from token_broker.services.webhook_overview import WorkspaceHook
from token_broker.store.database import Database
from token_broker.times import rfc3339
from token_broker.web.flash import flash
from token_broker.web.forms import EXPIRY_CHOICES, GRACE_CHOICES, KeyForm, n8n_callback_url, read_grace
from token_broker.web.frame import Frame, PageHandler, html_page, workspace_frame
from token_broker.web.pages import render, security_headers
from token_broker.web.sessions import check_form_csrf

ChangeHandler = Callable[[Request, Frame, dict[str, Any]], Awaitable[Response]]
RECONNECT_HINTS = {
    "zapier": "In Zapier, open the Apps page (under your account), find this connection and choose Reconnect.",
    "make": "In Make, open Connections, find this connection and choose Reauthorize.",
    "n8n": "In n8n, open Credentials, open this credential and connect it again (Connect my account).",
}
HOOK_END_REASONS = {
    "gone": "the receiver answered 410 Gone",
    "failing": "deliveries failed for days",
    "connection_ended": "its connection was disconnected",
    "credential_revoked": "its key was revoked",
    "secret_unreadable": "its signing secret can no longer be read (the server's secret key changed)",
}


@dataclass(frozen=True)
class PanelData:
    keys: list[CredentialView]
    connections: list[ConnectionView]
    clients: list[ClientView]
    hooks: list[WorkspaceHook]
    notices: list[Notice]
    names: dict[str, str]
    leak_response: str
    former: dict[str, str] = field(default_factory=dict)

    def actor_labels(self) -> set[str]:
        labels = {key.created_by for key in self.keys} | {client.created_by for client in self.clients}
        for connection in self.connections:
            labels |= {connection.created_by, connection.disconnected_by or ""}
        return labels

    def who(self, label: str) -> str:
        """A person's email for an actor label, where they are a member, marked when they no longer are; the label
        itself otherwise."""
        if label in self.names:
            return self.names[label]
        if label in self.former:
            return f"{self.former[label]} (former member)"
        return label


def load_panel(database: Database, actor: Actor, account_id: str) -> PanelData:
    people = directory.people_of(database, actor, account_id)
    data = PanelData(
        keys=keys.list_keys(database, actor, account_id),
        connections=connections.list_connections(database, actor, account_id),
        clients=directory.workspace_clients(database, actor, account_id),
        hooks=webhook_overview.hooks_of(database, actor, account_id),
        notices=admin_notices.recent_notices(database, account_id, limit=10),
        names={person.label: person.email for person in people},
        leak_response=leak_settings.leak_response(database, actor, account_id),
    )
    return replace(data, former=members.former_members(database, data.actor_labels() - set(data.names)))


@dataclass(frozen=True)
class Revealed:
    label: str
    value: str
    secret: bool


@dataclass(frozen=True)
class Reveal:
    """A secret shown once, in a dialog over the panel, by the response to the POST that made it."""

    title: str
    fields: tuple[Revealed, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


def panel_url(account_id: str, anchor: str = "") -> str:
    return f"/workspaces/{account_id}/api-access" + (f"#{anchor}" if anchor else "")


def back(frame: Frame, anchor: str) -> Response:
    return RedirectResponse(panel_url(frame.account_id, anchor), status_code=303, headers=security_headers())


def issuer(request: Request) -> str:
    return resources(request).settings.require_issuer()


async def render_panel(request: Request, frame: Frame, status_code: int = 200, **extra: Any) -> Response:
    data = await to_thread.run_sync(load_panel, resources(request).database, frame.actor, frame.account_id)
    context = {
        **frame.context(request, "api-access"),
        "data": data,
        "key_form": KeyForm(),
        "n8n_base_url": "",
        "n8n_error": None,
        "reveal": None,
        "scope_descriptions": SCOPE_DESCRIPTIONS,
        "expiry_choices": EXPIRY_CHOICES,
        "grace_choices": GRACE_CHOICES,
        "default_grace": DEFAULT_GRACE_SECONDS,
        "platform_names": PLATFORM_NAMES,
        "reconnect_hints": RECONNECT_HINTS,
        "hook_reasons": HOOK_END_REASONS,
        "issuer": issuer(request),
        "n8n_callback_path": N8N_CALLBACK_PATH,
        "leak_responses": leak_settings.DESCRIPTIONS,
        **extra,
    }
    return render(request, "panel.html", context, status_code=status_code)


@html_page
async def panel_page(request: Request) -> Response:
    return await render_panel(request, await workspace_frame(request))


@html_page
async def generate_key(request: Request) -> Response:
    frame = await workspace_frame(request)
    await check_form_csrf(request)
    key_form = KeyForm.read(await request.form())
    state = resources(request)
    try:
        key_request = key_form.request()
        issued = await to_thread.run_sync(
            keys.create_key, state.database, state.hasher, frame.actor, frame.account_id, key_request
        )
    except InvalidInput as error:
        return await render_panel(request, frame, 422, key_form=key_form.refused(error))
    assert issued.plaintext is not None
    reveal = Reveal(
        title=f"Your new key “{issued.view.name}”",
        fields=(Revealed("API key", issued.plaintext, secret=True),),
        notes=("Send it as Authorization: Bearer <key>, or in the X-Nim-Api-Key header.",),
    )
    return await render_panel(request, frame, reveal=reveal)


def panel_change(anchor: str) -> Callable[[ChangeHandler], PageHandler]:
    """A panel form that changes something: the workspace's frame and the form's CSRF check come first; a refusal (bad
    input, a conflict) is flashed and sends the user back to the panel's `anchor` section."""

    def wrap(handler: ChangeHandler) -> PageHandler:
        @html_page
        async def endpoint(request: Request) -> Response:
            frame = await workspace_frame(request)
            form = await check_form_csrf(request)
            try:
                return await handler(request, frame, form)
            except (InvalidInput, Conflict) as error:
                flash(request, "error", error.message)
                return back(frame, anchor)

        return endpoint

    return wrap


@panel_change("keys")
async def rotate_key(request: Request, frame: Frame, form: dict[str, Any]) -> Response:
    credential_id = request.path_params["credential_id"]
    state = resources(request)
    grace = read_grace(form)
    issued = await to_thread.run_sync(
        lambda: keys.rotate_key(
            state.database, state.hasher, frame.actor, credential_id, grace, account_id=frame.account_id
        )
    )
    if issued.plaintext is None:
        flash(request, "ok", f"The partner install token {credential_id} was rotated: its connection is disconnected.")
        return back(frame, "connections")
    until = issued.view.grace_until
    notes = (
        f"The previous secret keeps working until {rfc3339(until)}; then only this one does."
        if until is not None
        else "The previous secret stopped working now.",
    )
    reveal = Reveal(
        title=f"The new secret of “{issued.view.name}”",
        fields=(Revealed("API key", issued.plaintext, secret=True),),
        notes=notes,
    )
    return await render_panel(request, frame, reveal=reveal)


@panel_change("keys")
async def revoke_key(request: Request, frame: Frame, _form: dict[str, Any]) -> Response:
    credential_id = request.path_params["credential_id"]
    database = resources(request).database
    view = await to_thread.run_sync(
        lambda: keys.revoke_key(database, frame.actor, credential_id, account_id=frame.account_id)
    )
    if view.kind == "partner_install_token":
        flash(request, "ok", f"“{view.name}” was revoked and its connection disconnected.")
    else:
        flash(request, "ok", f"The key “{view.name}” was revoked: it stops working at once.")
    return back(frame, "keys")


async def disconnect_with_flash(request: Request, frame: Frame, said: Callable[[ConnectionView], str]) -> None:
    """Disconnect the connection the path names, in the frame's workspace, and flash the outcome: `said(view)` once
    it is disconnected, the refusal when it already was."""
    connection_id = request.path_params["connection_id"]
    database = resources(request).database
    try:
        view = await to_thread.run_sync(
            lambda: connections.disconnect(database, frame.actor, connection_id, account_id=frame.account_id)
        )
    except Conflict as error:
        flash(request, "error", error.message)
    else:
        flash(request, "ok", said(view))


@panel_change("connections")
async def disconnect(request: Request, frame: Frame, _form: dict[str, Any]) -> Response:
    await disconnect_with_flash(
        request,
        frame,
        lambda view: f"{PLATFORM_NAMES[view.platform]} was disconnected. {RECONNECT_HINTS[view.platform]}",
    )
    return back(frame, "connections")


@html_page
async def register_n8n(request: Request) -> Response:
    frame = await workspace_frame(request)
    form = await check_form_csrf(request)
    base_url = str(form.get("base_url") or "")[:2048]
    redirect_uri = n8n_callback_url(base_url)
    database = resources(request).database
    try:
        registered = await to_thread.run_sync(
            lambda: clients.register_client(database, frame.actor, "n8n", [redirect_uri], account_id=frame.account_id)
        )
    except InvalidInput as error:
        return await render_panel(request, frame, 422, n8n_base_url=base_url, n8n_error=error.message)
    base = issuer(request)
    reveal = Reveal(
        title="Your n8n instance is registered",
        fields=(
            Revealed("Client ID", registered.client_id, secret=False),
            Revealed("Client Secret", registered.client_secret, secret=True),
        ),
        notes=(
            f"In n8n, create an OAuth2 credential with Authorization URL {base}/oauth/authorize and "
            f"Access Token URL {base}/oauth/token, and this Client ID and Client Secret.",
            f"Its OAuth Redirect URL must be {registered.redirect_uris[0]}.",
        ),
    )
    return await render_panel(request, frame, reveal=reveal)


@panel_change("n8n")
async def rotate_client_secret(request: Request, frame: Frame, form: dict[str, Any]) -> Response:
    client_id = request.path_params["client_id"]
    database = resources(request).database
    grace = read_grace(form)
    rotated = await to_thread.run_sync(
        lambda: client_lifecycle.rotate_client_secret(
            database, frame.actor, client_id, grace, account_id=frame.account_id
        )
    )
    until = rotated.grace_until
    later = f"keeps working until {rfc3339(until)}; then only this one does" if until else "stopped working now"
    notes = (f"Enter it in the n8n OAuth2 credential now: the previous secret {later}. Connections stay connected.",)
    reveal = Reveal(
        title="The new secret of your n8n instance",
        fields=(
            Revealed("Client ID", rotated.client_id, secret=False),
            Revealed("Client Secret", rotated.client_secret, secret=True),
        ),
        notes=notes,
    )
    return await render_panel(request, frame, reveal=reveal)


@panel_change("n8n")
async def revoke_client(request: Request, frame: Frame, _form: dict[str, Any]) -> Response:
    client_id = request.path_params["client_id"]
    database = resources(request).database
    revoked = await to_thread.run_sync(
        lambda: client_lifecycle.revoke_client(database, frame.actor, client_id, account_id=frame.account_id)
    )
    ended = revoked.connections_ended
    flash(
        request,
        "ok",
        f"The n8n instance {client_id} was revoked; {ended} connection{'' if ended == 1 else 's'} ended. "
        "Register it again to reconnect it.",
    )
    return back(frame, "n8n")


@panel_change("leaks")
async def change_leak_response(request: Request, frame: Frame, form: dict[str, Any]) -> Response:
    choice = str(form.get("leak_response") or "")
    database = resources(request).database
    await to_thread.run_sync(lambda: leak_settings.set_leak_response(database, frame.actor, frame.account_id, choice))
    flash(
        request, "ok", f"When a secret scanner reports a key of this workspace: {leak_settings.DESCRIPTIONS[choice]}."
    )
    return back(frame, "leaks")
