"""Signing in and out, and the session as JSON."""

from __future__ import annotations

from urllib.parse import urlsplit

import anyio
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from token_broker.app_state import resources
from token_broker.hashing_pool import HashingBusy
from token_broker.services import workspaces
from token_broker.sources import source_of
from token_broker.web.pages import render, security_headers
from token_broker.web.sessions import (
    check_form_csrf,
    csrf_token,
    end_session,
    sign_in,
    signed_in_user,
)


def safe_next(value: object) -> str:
    """A same-origin relative path to go to after signing in; anything else goes to /."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if not value.isprintable() or len(value) > 2048:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


async def login_page(request: Request) -> Response:
    return render(request, "login.html", {"next": safe_next(request.query_params.get("next")), "error": None})


async def login(request: Request) -> Response:
    form = await check_form_csrf(request)
    email = str(form.get("email") or "").strip().lower()[:320]
    password = str(form.get("password") or "")[:1024]
    target = safe_next(form.get("next"))
    address = request.client.host if request.client else "unknown"
    state = resources(request)
    if not state.sign_in_failures.admit(email, address):
        message = "Too many failed sign-ins: wait a minute, then try again."
        return render(request, "login.html", {"next": target, "error": message, "email": email}, status_code=429)
    try:
        user = await state.password_pool.run(
            source_of(address),
            lambda: workspaces.authenticate(state.database, state.hasher, email, password),
            state.sign_in_failures.suspect(address),
        )
    except HashingBusy as busy:
        state.sign_in_failures.succeeded(email, address)  # nothing was checked: the attempt costs nothing
        message = "Too many sign-ins at once: wait a few seconds, then try again."
        page = render(request, "login.html", {"next": target, "error": message, "email": email}, status_code=503)
        page.headers["Retry-After"] = str(busy.retry_after)
        return page
    if user is None:
        delay = state.sign_in_failures.failed(email, address)
        if delay:
            await anyio.sleep(delay)
        message = "That email and password do not match an account."
        return render(request, "login.html", {"next": target, "error": message, "email": email}, status_code=401)
    state.sign_in_failures.succeeded(email, address)
    sign_in(request, user)
    return RedirectResponse(target, status_code=303, headers=security_headers())


async def logout(request: Request) -> Response:
    await check_form_csrf(request)
    await end_session(request)
    return RedirectResponse("/login", status_code=303, headers=security_headers())


async def session_json(request: Request) -> Response:
    user = await signed_in_user(request)
    if user is None:
        return JSONResponse({"error": "not_signed_in", "message": "Sign in first."}, status_code=401)
    memberships = await to_thread.run_sync(workspaces.memberships_of, resources(request).database, user.id)
    return JSONResponse(
        {
            "user": {"id": user.public_id, "email": user.email},
            "csrf_token": csrf_token(request),
            "workspaces": [membership.to_json() for membership in memberships],
        },
        headers={"Cache-Control": "no-store"},
    )


async def home(request: Request) -> Response:
    user = await signed_in_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    memberships = await to_thread.run_sync(workspaces.memberships_of, resources(request).database, user.id)
    if not memberships:
        return render(request, "no_workspace.html", {"user": user})
    active = request.session.get("ws")  # the session's active workspace, while the user still has a role in it
    chosen = next((m for m in memberships if m.account_id == active), memberships[0])
    return RedirectResponse(f"/workspaces/{chosen.account_id}/api-access", status_code=303)
