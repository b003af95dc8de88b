"""A signed-in user's own account: changing their password (the current one required), in a page (/account) and the
admin JSON API (POST /api/account/password). The change ends the user's other sessions; this one stays signed in."""

from __future__ import annotations

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from token_broker.app_state import resources
from token_broker.errors import BrokerError, TooManyTries
from token_broker.guard.throttle import FailureThrottle
from token_broker.services import members
from token_broker.web.admin_api import answer, json_body
from token_broker.web.frame import html_page
from token_broker.web.pages import render
from token_broker.web.sessions import actor_for, check_form_csrf, check_header_csrf, keep_session, require_user

# Wrong current passwords per user (only the holder of their session can try): 5, then one a minute.
WRONG_PASSWORDS = FailureThrottle(per_credential=(5, 1 / 60), per_address=(20, 1 / 10))


async def _change(request: Request, current: object, new: object) -> None:
    user = await require_user(request)
    address = request.client.host if request.client else "unknown"
    if not WRONG_PASSWORDS.admit(user.public_id, address):
        raise TooManyTries("Too many wrong current passwords: wait a minute, then try again.")
    state = resources(request)
    actor = actor_for(request, user)
    generation = await to_thread.run_sync(
        lambda: members.change_password(state.database, state.hasher, actor, current, new)
    )
    WRONG_PASSWORDS.succeeded(user.public_id, address)
    keep_session(request, generation)


async def api_change_password(request: Request) -> Response:
    await require_user(request)
    check_header_csrf(request)
    body = await json_body(request, ("current_password", "new_password"))
    await _change(request, body.get("current_password"), body.get("new_password"))
    return answer({"status": "password changed", "other_sessions_ended": True})


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
        if error.status >= 500:
            raise
        context = {"user": user, "error": error.message, "done": False}
        return render(request, "account.html", context, status_code=error.status)
    return render(request, "account.html", {"user": user, "error": None, "done": True})


ROUTES: list[BaseRoute] = [
    Route("/account", account_page, methods=["GET"]),
    Route("/account/password", account_change_password, methods=["POST"]),
    Route("/api/account/password", api_change_password, methods=["POST"]),
]
