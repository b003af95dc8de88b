"""The token endpoint refuses with the exact RFC 6749 5.2 codes and statuses, and RFC 7636's PKCE rules."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from tests.connect import exchange, get_code, refresh, register
from tests.live import LiveServer
from tests.support import Team
from token_broker.store.models import utcnow
from token_broker.store.oauth_models import AuthorizationCode


def error_of(answer: httpx.Response) -> tuple[int, str]:
    body = answer.json()
    assert set(body) <= {"error", "error_description"} and answer.headers["cache-control"] == "no-store"
    return answer.status_code, body["error"]


def test_pkce_rules(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    code = get_code(live.base_url, platform, team.account_id)
    assert error_of(exchange(live.base_url, platform, code, pkce=False)) == (400, "invalid_request")  # missing
    code = get_code(live.base_url, platform, team.account_id)
    wrong = exchange(live.base_url, platform, code, pkce=False, code_verifier="x" * 50)
    assert error_of(wrong) == (400, "invalid_grant")
    code = get_code(live.base_url, platform, team.account_id, pkce=False)
    # a verifier for a request that had no challenge (RFC 9700 4.8)
    assert error_of(exchange(live.base_url, platform, code)) == (400, "invalid_request")


def test_code_replay_is_refused_and_revokes_what_the_code_gave(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    code = get_code(live.base_url, platform, team.account_id)
    first = exchange(live.base_url, platform, code)
    assert first.status_code == 200
    assert error_of(exchange(live.base_url, platform, code)) == (400, "invalid_grant")
    token = first.json()["access_token"]
    me = httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert me.status_code == 401 and me.json()["error"] == "reconnect_required"
    assert error_of(refresh(live.base_url, platform, first.json()["refresh_token"])) == (400, "invalid_grant")


def test_code_of_another_client_and_expired_code(live: LiveServer, team: Team) -> None:
    zapier = register(live.resources.database, "zapier")
    make = register(live.resources.database, "make")
    code = get_code(live.base_url, zapier, team.account_id)
    make.verifier = zapier.verifier
    make.redirect_uri = zapier.redirect_uri
    assert error_of(exchange(live.base_url, make, code)) == (400, "invalid_grant")
    code = get_code(live.base_url, zapier, team.account_id)
    with live.resources.database.write() as session:
        session.execute(update(AuthorizationCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert error_of(exchange(live.base_url, zapier, code)) == (400, "invalid_grant")


def test_redirect_uri_must_match_the_authorization_request(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    code = get_code(live.base_url, platform, team.account_id)
    answer = exchange(live.base_url, platform, code, redirect_uri="https://zapier.com/other")
    assert error_of(answer) == (400, "invalid_grant")


def test_client_authentication(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "n8n", team.account_id, team.admin)
    code = get_code(live.base_url, platform, team.account_id)
    url = f"{live.base_url}/oauth/token"
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": platform.redirect_uri,
            "code_verifier": platform.verifier}  # fmt: skip
    assert error_of(httpx.post(url, data=form)) == (400, "invalid_client")  # no authentication at all
    assert error_of(httpx.post(url, data={**form, "client_id": platform.client_id, "client_secret": "wrong"})) == (
        400, "invalid_client")  # fmt: skip
    basic = httpx.post(url, data=form, auth=(platform.client_id, "wrong"))
    assert error_of(basic) == (401, "invalid_client") and basic.headers["www-authenticate"].startswith("Basic")
    garbage = httpx.post(url, data=form, headers={"Authorization": b"Basic \xff\xfe not base64"})
    assert error_of(garbage) == (401, "invalid_client")
    other = httpx.post(url, data={**form, "client_id": "zapier_someoneelse"}, headers=platform.basic())
    assert error_of(other) == (401, "invalid_client")
    unpadded = platform.basic()["Authorization"].rstrip("=")  # decoded leniently
    assert httpx.post(url, data=form, headers={"Authorization": unpadded}).status_code == 200


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"grant_type": "password", "username": "a", "password": "b"}, (400, "unsupported_grant_type")),
        ({"grant_type": "client_credentials"}, (400, "unsupported_grant_type")),
        ({"grant_type": "authorization_code"}, (400, "invalid_request")),
        ({"grant_type": "refresh_token"}, (400, "invalid_request")),
        ({"grant_type": "refresh_token", "refresh_token": "nim_prt_garbage"}, (400, "invalid_grant")),
        ({"grant_type": "authorization_code", "code": "x" * 10000}, (400, "invalid_request")),
    ],
)
def test_bad_token_requests(live: LiveServer, team: Team, form: dict[str, str], expected: tuple[int, str]) -> None:
    platform = register(live.resources.database, "zapier")
    secret = {"client_id": platform.client_id, "client_secret": platform.client_secret}
    answer = httpx.post(f"{live.base_url}/oauth/token", data={**form, **secret})
    assert error_of(answer) == expected


def test_only_form_bodies_are_accepted(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    answer = httpx.post(f"{live.base_url}/oauth/token", json={"grant_type": "refresh_token",
                        "client_id": platform.client_id, "client_secret": platform.client_secret})  # fmt: skip
    assert error_of(answer) == (400, "invalid_request")


def test_scope_cannot_widen_on_refresh(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    code = get_code(live.base_url, platform, team.account_id, scope="links:read")
    tokens = exchange(live.base_url, platform, code).json()
    assert tokens["scope"] == "links:read"
    assert error_of(refresh(live.base_url, platform, tokens["refresh_token"], scope="links:read links:write")) == (
        400, "invalid_scope")  # fmt: skip


def test_refresh_of_another_client(live: LiveServer, team: Team) -> None:
    zapier = register(live.resources.database, "zapier")
    make = register(live.resources.database, "make")
    code = get_code(live.base_url, zapier, team.account_id)
    tokens = exchange(live.base_url, zapier, code).json()
    assert error_of(refresh(live.base_url, make, tokens["refresh_token"])) == (400, "invalid_grant")
    assert refresh(live.base_url, zapier, tokens["refresh_token"]).status_code == 200  # still healthy
