"""Signing out ends the session on the server: a cookie copied before sign-out is refused after it, by the pages (a
redirect to the login page) and by the admin API (401); a new password ends the user's other sessions."""

from __future__ import annotations

from contextlib import closing

import httpx
from sqlalchemy import select

from tests.browser_forms import hidden_inputs, sign_in
from tests.live import LiveServer
from tests.support import PASSWORD, Team
from token_broker.store.models import AuditEvent


def signed_in_client(live: LiveServer, email: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
    client = live.client()
    assert sign_in(client, email, password).status_code == 303
    return client, client.get("/api/session").json()["csrf_token"]


def replay(live: LiveServer, cookie: str, path: str) -> httpx.Response:
    with live.client(cookies={"tb_session": cookie}) as thief:
        return thief.get(path)


def test_a_cookie_copied_before_sign_out_stops_working_at_sign_out(live: LiveServer, team: Team) -> None:
    client, csrf = signed_in_client(live, "admin@acme.example")
    with closing(client):
        copied = client.cookies["tb_session"]
        panel = f"/workspaces/{team.account_id}/api-access"
        assert replay(live, copied, panel).status_code == 200, "the copy works while the session lives"
        assert replay(live, copied, f"/api/workspaces/{team.account_id}/keys").status_code == 200
        assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    page = replay(live, copied, panel)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    api = replay(live, copied, f"/api/workspaces/{team.account_id}/keys")
    assert api.status_code == 401 and api.json()["error"] == "not_signed_in"
    assert replay(live, copied, "/api/session").status_code == 401
    again, _ = signed_in_client(live, "admin@acme.example")
    with closing(again):
        assert again.get(panel).status_code == 200, "signing in again works"


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(live: LiveServer, team: Team) -> None:
    laptop, laptop_csrf = signed_in_client(live, "member@acme.example")
    phone, _ = signed_in_client(live, "member@acme.example")
    with closing(laptop), closing(phone):
        wrong = laptop.post(
            "/api/account/password",
            json={"current_password": "not my password", "new_password": "a brand new password"},
            headers={"X-CSRF-Token": laptop_csrf},
        )
        assert wrong.status_code == 403 and wrong.json()["error"] == "wrong_password"
        short = laptop.post(
            "/api/account/password",
            json={"current_password": PASSWORD, "new_password": "short"},
            headers={"X-CSRF-Token": laptop_csrf},
        )
        assert short.status_code == 422 and short.json()["error"] == "invalid_request"
        no_csrf = laptop.post(
            "/api/account/password", json={"current_password": PASSWORD, "new_password": "a brand new password"}
        )
        assert no_csrf.status_code == 403 and no_csrf.json()["error"] == "csrf_failed"
        assert phone.get("/api/session").status_code == 200, "refused attempts change nothing"
        done = laptop.post(
            "/api/account/password",
            json={"current_password": PASSWORD, "new_password": "a brand new password"},
            headers={"X-CSRF-Token": laptop_csrf},
        )
        assert done.status_code == 200, done.text
        assert laptop.get("/api/session").status_code == 200, "the session that changed it stays"
        assert phone.get("/api/session").status_code == 401, "every other session ended"
    with live.client() as stranger:
        assert sign_in(stranger, "member@acme.example", PASSWORD).status_code == 401
    fresh, _ = signed_in_client(live, "member@acme.example", "a brand new password")
    fresh.close()
    with live.resources.database.read() as session:
        outcomes = list(
            session.scalars(
                select(AuditEvent.outcome).where(AuditEvent.action == "user.password_changed").order_by(AuditEvent.id)
            )
        )
    assert outcomes == ["refused", "refused", "ok"]


def test_the_account_page_changes_the_password(live: LiveServer, team: Team) -> None:
    client, _ = signed_in_client(live, "viewer@acme.example")
    with closing(client):
        page = client.get("/account")
        assert page.status_code == 200 and "Change your password" in page.text
        form = {**hidden_inputs(page.text), "current_password": PASSWORD, "new_password": "viewer's new password"}
        done = client.post("/account/password", data=form)
        assert done.status_code == 200 and "Your password was changed" in done.text
        assert client.get("/api/session").status_code == 200
