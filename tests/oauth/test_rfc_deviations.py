"""Negative tests for the authorization server's finer RFC rules: one client authentication method per request
(RFC 6749 2.3, 5.2), an S256 challenge of exactly 43 base64url characters (RFC 7636 4.2), 405 with Allow for a wrong
method, invalid_request without grant_type, and an error_description in every OAuth error body."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import httpx
import pytest

from tests.browser_forms import sign_in
from tests.connect import authorize_params, exchange, get_code, redirect_query, register
from tests.live import LiveServer
from tests.support import PASSWORD, Team


def oauth_error_of(answer: httpx.Response) -> tuple[int, str]:
    body = answer.json()
    assert set(body) == {"error", "error_description"}, body
    assert isinstance(body["error_description"], str) and body["error_description"].strip()
    assert answer.headers["cache-control"] == "no-store"
    return answer.status_code, body["error"]


def test_basic_and_a_body_secret_together_are_refused(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    code = get_code(live.base_url, platform, team.account_id)
    url = f"{live.base_url}/oauth/token"
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": platform.redirect_uri,
            "code_verifier": platform.verifier}  # fmt: skip
    both = {**form, "client_id": platform.client_id, "client_secret": platform.client_secret}
    assert oauth_error_of(httpx.post(url, data=both, headers=platform.basic())) == (400, "invalid_request")
    # the same for revocation and introspection
    for path in ("/oauth/revoke", "/oauth/introspect"):
        answer = httpx.post(f"{live.base_url}{path}", data={"token": "x", "client_secret": platform.client_secret},
                            headers=platform.basic())  # fmt: skip
        assert oauth_error_of(answer) == (400, "invalid_request")
    # nothing was consumed: the code still redeems with one method
    assert exchange(live.base_url, platform, code, style="basic").status_code == 200


def test_a_failed_basic_attempt_never_falls_through_to_the_body(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    code = get_code(live.base_url, platform, team.account_id)
    url = f"{live.base_url}/oauth/token"
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": platform.redirect_uri,
            "code_verifier": platform.verifier, "client_id": platform.client_id}  # fmt: skip
    wrong = {"Authorization": "Basic " + base64.b64encode(f"{platform.client_id}:wrong".encode()).decode()}
    answer = httpx.post(url, data=form, headers=wrong)
    assert oauth_error_of(answer) == (401, "invalid_client") and answer.headers["www-authenticate"].startswith("Basic")
    # with the right secret in the body as well: refused as two methods, not authenticated by the second
    answer = httpx.post(url, data={**form, "client_secret": platform.client_secret}, headers=wrong)
    assert oauth_error_of(answer) == (400, "invalid_request")
    # an unknown client in Basic, the real one in the body: still 401
    unknown = {"Authorization": "Basic " + base64.b64encode(b"zapier_nobody:whatever").decode()}
    assert oauth_error_of(httpx.post(url, data=form, headers=unknown)) == (401, "invalid_client")
    assert exchange(live.base_url, platform, code).status_code == 200  # the code was never redeemed


@pytest.fixture
def browser(live: LiveServer, team: Team) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base_url, timeout=30) as client:
        assert sign_in(client, "admin@acme.example", PASSWORD).status_code == 303
        yield client


@pytest.mark.parametrize(
    "challenge",
    [
        "A" * 42,
        "A" * 44,
        "A" * 128,  # a valid plain-method challenge length, never an S256 one
        "A" * 42 + "~",  # 43 characters, but not base64url
        "A" * 42 + ".",
        "A" * 42 + "=",
    ],
)
def test_an_s256_challenge_must_be_43_base64url_characters(
    live: LiveServer, team: Team, browser: httpx.Client, challenge: str
) -> None:
    platform = register(live.resources.database, "zapier")
    answer = browser.get("/oauth/authorize", params=authorize_params(platform, code_challenge=challenge))
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"].startswith(platform.redirect_uri)
    query = redirect_query(answer)
    assert query["error"] == "invalid_request" and query["error_description"]
    assert query["state"] == "st-123" and query["iss"] == live.base_url
    assert "code" not in query


def test_a_43_character_challenge_is_accepted(live: LiveServer, team: Team, browser: httpx.Client) -> None:
    platform = register(live.resources.database, "zapier")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(platform.verifier.encode()).digest()).rstrip(b"=").decode()
    assert len(challenge) == 43
    answer = browser.get("/oauth/authorize", params=authorize_params(platform, code_challenge=challenge))
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("path", "allowed", "methods"),
    [
        ("/oauth/token", "POST", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"]),
        ("/oauth/revoke", "POST", ["GET", "PUT", "DELETE"]),
        ("/oauth/introspect", "POST", ["GET", "PUT", "DELETE"]),
        ("/.well-known/oauth-authorization-server", "GET, HEAD", ["POST", "PUT", "DELETE"]),
    ],
)
def test_a_wrong_method_is_405_with_allow(live: LiveServer, path: str, allowed: str, methods: list[str]) -> None:
    for method in methods:
        answer = httpx.request(method, f"{live.base_url}{path}")
        assert answer.status_code == 405, (method, answer.text)
        assert answer.headers["allow"] == allowed
        assert oauth_error_of(answer)[1] == "invalid_request"


def test_the_metadata_answers_head(live: LiveServer) -> None:
    answer = httpx.head(f"{live.base_url}/.well-known/oauth-authorization-server")
    assert answer.status_code == 200 and answer.content == b""


def test_a_request_without_grant_type_is_invalid_request(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    url = f"{live.base_url}/oauth/token"
    secret = {"client_id": platform.client_id, "client_secret": platform.client_secret}
    assert oauth_error_of(httpx.post(url, data={**secret, "code": "x"})) == (400, "invalid_request")
    assert oauth_error_of(httpx.post(url, data={"code": "x"})) == (400, "invalid_request")
    assert oauth_error_of(httpx.post(url, data={"grant_type": "", **secret})) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"grant_type": "password", "username": "a", "password": "b"}, (400, "unsupported_grant_type")),
        ({"grant_type": "client_credentials"}, (400, "unsupported_grant_type")),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:device_code"}, (400, "unsupported_grant_type")),
        ({"grant_type": "authorization_code"}, (400, "invalid_request")),
        ({"grant_type": "refresh_token"}, (400, "invalid_request")),
        ({"grant_type": "refresh_token", "refresh_token": "nim_prt_garbage"}, (400, "invalid_grant")),
        ({"grant_type": "refresh_token", "refresh_token": "x", "scope": " "}, (400, "invalid_scope")),
        (
            {"grant_type": "authorization_code", "code": "nope", "redirect_uri": "https://x.example/"},
            (400, "invalid_grant"),
        ),
    ],
)
def test_every_token_error_has_a_description(
    live: LiveServer, team: Team, form: dict[str, str], expected: tuple[int, str]
) -> None:
    platform = register(live.resources.database, "zapier")
    secret = {"client_id": platform.client_id, "client_secret": platform.client_secret}
    assert oauth_error_of(httpx.post(f"{live.base_url}/oauth/token", data={**form, **secret})) == expected


def test_client_errors_have_a_description(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "n8n", team.account_id, team.admin)
    url = f"{live.base_url}/oauth/token"
    form = {"grant_type": "refresh_token", "refresh_token": "x"}
    assert oauth_error_of(httpx.post(url, data=form)) == (400, "invalid_client")
    assert oauth_error_of(httpx.post(url, data={**form, "client_id": platform.client_id})) == (400, "invalid_client")
    assert oauth_error_of(httpx.post(url, data=form, auth=(platform.client_id, "wrong"))) == (401, "invalid_client")
    for path in ("/oauth/revoke", "/oauth/introspect"):
        assert oauth_error_of(httpx.post(f"{live.base_url}{path}", data={"token": "x"})) == (400, "invalid_client")
        answer = httpx.post(f"{live.base_url}{path}", data={}, auth=(platform.client_id, platform.client_secret))
        assert oauth_error_of(answer) == (400, "invalid_request")
