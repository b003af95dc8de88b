"""Signing in and out of the dashboard: the contract's form, session cookie, CSRF and redirect rules."""

from __future__ import annotations

import pytest

from tests.browser_forms import forms, hidden_inputs, sign_in
from tests.live import LiveServer
from tests.support import PASSWORD, Team
from token_broker.web.auth_routes import safe_next


def test_the_login_page_has_the_contracts_form(live: LiveServer) -> None:
    with live.client() as client:
        page = client.get("/login")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    [form] = forms(page.text)
    assert form["method"] == "post"
    assert {"email", "password", "csrf_token"} <= set(form["inputs"])  # type: ignore[arg-type]
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"


def test_sign_in_sets_a_session_and_goes_to_next(live: LiveServer, team: Team) -> None:
    with live.client() as client:
        answer = sign_in(client, "admin@acme.example", PASSWORD, next_path="/api/session")
        assert answer.status_code == 303 and answer.headers["location"] == "/api/session"
        cookie = answer.headers["set-cookie"]
        assert "tb_session=" in cookie and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
        assert "secure" not in cookie.lower()  # served over http here; https sets Secure
        session = client.get("/api/session").json()
        assert session["user"]["email"] == "admin@acme.example"
        assert session["workspaces"] == [{"account_id": team.account_id, "name": "Acme", "role": "admin"}]
        assert len(session["csrf_token"]) >= 32
        home = client.get("/")
        assert home.status_code == 303 and home.headers["location"] == f"/workspaces/{team.account_id}/api-access"
        logout = client.post("/logout", data={"csrf_token": session["csrf_token"]})
        assert logout.status_code == 303
        assert client.get("/api/session").status_code == 401


def test_wrong_password_and_missing_csrf(live: LiveServer, team: Team) -> None:
    with live.client() as client:
        assert sign_in(client, "admin@acme.example", "wrong password").status_code == 401
        assert sign_in(client, "nobody@acme.example", PASSWORD).status_code == 401
        page = client.get("/login")
        no_csrf = client.post("/login", data={"email": "admin@acme.example", "password": PASSWORD})
        assert no_csrf.status_code == 403
        stale = {**hidden_inputs(page.text), "csrf_token": "forged"}
        assert (
            client.post("/login", data={**stale, "email": "admin@acme.example", "password": PASSWORD}).status_code
            == 403
        )
        assert client.get("/api/session").status_code == 401


def test_repeated_failures_are_throttled(live: LiveServer, team: Team) -> None:
    with live.client() as client:
        statuses = [sign_in(client, "viewer@acme.example", f"wrong {i}").status_code for i in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/workspaces/acc_x/api-access", "/workspaces/acc_x/api-access"),
        ("/oauth/authorize?client_id=a&state=b", "/oauth/authorize?client_id=a&state=b"),
        ("https://evil.example/", "/"),
        ("//evil.example/path", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
        (None, "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("relative/path", "/"),
    ],
)
def test_next_is_a_same_origin_path_only(given: object, expected: str) -> None:
    assert safe_next(given) == expected
