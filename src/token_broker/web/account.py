"""A signed-in user's own account: changing their password (the current one required), in a page (/account) and the
admin JSON API (POST /api/session/password answers 204; its first path, POST /api/account/password, 200 with a body).
The change ends the user's other sessions; this one stays signed in.

The current password is checked in the bounded password pool that sign-in uses (`Resources.password_pool`), never in
the thread pool the database calls share, so that a stolen session spraying guesses cannot starve other requests;
a full pool answers 503 with Retry-After and costs the user none of their budget of wrong current passwords.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from token_broker.app_state import resources
from token_broker.error_responses import api_error
from token_broker.errors import BrokerError, PasswordsBusy, TooManyTries, WrongPassword
from token_broker.hashing_pool import HashingBusy
from token_broker.services import members
from token_broker.sources import source_of
from token_broker.web.admin_api import answer, json_body
from token_broker.web.frame import html_page
from token_broker.web.pages import render
from token_broker.web.sessions import actor_for, check_form_csrf, check_header_csrf, keep_session, require_user


async def _change(request: Request, current: object, new: object) -> None:
    user = await require_user(request)
    address = request.client.host if request.client else "unknown"
    # Keyed by the user, whom only the holder of one of their sessions can name here, not by a public email.
    failures = resources(request).password_change_failures
    if not failures.admit(user.public_id, address):
        raise TooManyTries("Too many wrong current passwords: wait a minute, then try again.")
    state = resources(request)
    actor = actor_for(request, user)
    try:
        generation = await state.password_pool.run(
            source_of(address), lambda: members.change_password(state.database, state.hasher, actor, current, new)
        )
    except HashingBusy as busy:
        failures.succeeded(user.public_id, address)  # nothing was checked: the attempt costs nothing
        raise PasswordsBusy(busy.retry_after) from None
    except WrongPassword:
        raise
    except BrokerError:
        failures.succeeded(user.public_id, address)  # the current password was right (or never checked)
        raise
    failures.succeeded(user.public_id, address)
    keep_session(request, generation)


async def _api_change(request: Request) -> Response | None:
    """None once the password changed; the 503 answer when the password pool is full."""
    await require_user(request)
    check_header_csrf(request)
    body = await json_body(request, ("current_password", "new_password"))
    try:
        await _change(request, body.get("current_password"), body.get("new_password"))
    except PasswordsBusy as busy:
        return api_error(busy)
    return None


async def api_change_password(request: Request) -> Response:
    refused = await _api_change(request)
    return refused or answer({"status": "password changed", "other_sessions_ended": True})


async def api_session_password(request: Request) -> Response:
    refused = await _api_change(request)
    return refused or Response(status_code=204, headers={"Cache-Control": "no-store"})


@html_page
async def account_page(request: Request) -> Response:
    user = await require_user(request)
    return render(request, "account.html", {"user": user, "error": None, "done": False})


@html_page
async def account_change_password(request: Request) -> Response:
    user = await require_user(request)
    form = await check_form_csrf(request)
    current, new = str(form.get("current_password") or "")[:1024], str(form.get("new_password") or "")[:2048]
    try:
        await _change(request, current, new)
    except BrokerError as error:
        if error.status >= 500 and not isinstance(error, PasswordsBusy):
            raise
        context = {"user": user, "error": error.message, "done": False}
        page = render(request, "account.html", context, status_code=error.status)
        if isinstance(error, PasswordsBusy):
            page.headers["Retry-After"] = str(error.retry_after)
        return page
    return render(request, "account.html", {"user": user, "error": None, "done": True})


ROUTES: list[BaseRoute] = [
    Route("/account", account_page, methods=["GET"]),
    Route("/account/password", account_change_password, methods=["POST"]),
    Route("/api/session/password", api_session_password, methods=["POST"]),
    Route("/api/account/password", api_change_password, methods=["POST"]),
]
