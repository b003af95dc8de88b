"""Who is signed in, and the CSRF token of their session.

The session is Starlette's signed cookie (itsdangerous, keyed by TOKEN_BROKER_SECRET_KEY): it holds the user's
internal id, their session generation, a CSRF token and when it was issued; nothing secret about the user. Signing in
replaces the whole session, so a session fixed before sign-in is worthless after it. A cookie is honoured only while
its generation is the user's current one: signing out raises it (services/user_sessions.py), so a copy of the cookie
taken before sign-out stops working at sign-out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

from anyio import to_thread
from starlette.requests import HTTPConnection, Request

from token_broker.app_state import resources
from token_broker.errors import CsrfFailed, NotSignedIn
from token_broker.services import user_sessions, workspaces
from token_broker.services.actors import Actor
from token_broker.services.workspaces import SignedInUser

SESSION_COOKIE = "tb_session"
SESSION_SECONDS = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# The dashboard's largest form has about a dozen fields; BodyLimit bounds the whole body before this is parsed.
MAX_FORM_FIELDS = 50
MAX_FORM_FIELD_BYTES = 16 * 1024


def csrf_token(connection: HTTPConnection) -> str:
    """The session's CSRF token, made on first use (also for visitors not signed in, such as the login form)."""
    session: dict[str, Any] = connection.session
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf(connection: HTTPConnection, presented: object) -> None:
    expected = connection.session.get("csrf")
    if not isinstance(expected, str) or not isinstance(presented, str) or not hmac.compare_digest(expected, presented):
        raise CsrfFailed(
            "The form or request is missing its CSRF token, or it is stale: reload the page and try again."
        )


async def check_form_csrf(request: Request) -> dict[str, Any]:
    """The submitted form, after checking its csrf_token field."""
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_FIELD_BYTES)
    check_csrf(request, form.get(CSRF_FIELD))
    return dict(form)


def check_header_csrf(request: Request) -> None:
    check_csrf(request, request.headers.get(CSRF_HEADER))


def sign_in(request: Request, user: SignedInUser) -> None:
    request.session.clear()
    request.session.update(
        {"uid": user.id, "gen": user.generation, "at": int(time.time()), "csrf": secrets.token_urlsafe(32)}
    )


def sign_out(request: Request) -> None:
    """Forget the session in this browser only; `end_session` also ends it on the server."""
    request.session.clear()


async def end_session(request: Request) -> None:
    """Sign out: end the user's sessions on the server (every copy of the cookie), then clear this one."""
    uid = request.session.get("uid")
    if isinstance(uid, int) and await signed_in_user(request) is not None:
        await to_thread.run_sync(user_sessions.end_sessions, resources(request).database, uid)
    request.session.clear()


def keep_session(request: Request, generation: int) -> None:
    """After raising the user's generation on purpose (a new password), keep this one session alive."""
    request.session["gen"] = generation


async def signed_in_user(connection: HTTPConnection) -> SignedInUser | None:
    uid = connection.session.get("uid")
    issued = connection.session.get("at")
    generation = connection.session.get("gen")
    if not isinstance(uid, int) or not isinstance(issued, int) or time.time() - issued > SESSION_SECONDS:
        return None
    if not isinstance(generation, int):
        return None
    user = await to_thread.run_sync(workspaces.find_user, resources(connection).database, uid)
    if user is None or user.generation != generation:
        return None
    return user


async def require_user(connection: HTTPConnection) -> SignedInUser:
    user = await signed_in_user(connection)
    if user is None:
        raise NotSignedIn("Sign in first.")
    return user


def actor_for(connection: HTTPConnection, user: SignedInUser) -> Actor:
    client = connection.client
    return Actor.user(user.id, user.public_id, client_address=client.host if client else None)
