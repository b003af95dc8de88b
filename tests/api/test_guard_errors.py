"""Every row of the contract's error table for the workspace API, through a real server, with both headers."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import httpx
import pytest

from tests.live import LiveServer, live_server, raw_request
from tests.makers import Keys
from tests.support import Team
from token_broker import credentials
from token_broker.credentials import CredentialKind
from token_broker.services import keys

REALM = 'Bearer realm="workspace-api"'
INVALID_TOKEN = f'{REALM}, error="invalid_token"'


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def api_key(key: str) -> dict[str, str]:
    return {"X-Nim-Api-Key": key}


BOTH = pytest.mark.parametrize("header", [bearer, api_key], ids=["bearer", "x-nim-api-key"])


def assert_error(response: httpx.Response, status: int, code: str, www: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"].endswith(".")
    assert response.headers.get("www-authenticate") == www
    return body


def test_missing_api_key(live: LiveServer) -> None:
    with live.client() as client:
        assert_error(client.get("/v1/me"), 401, "missing_api_key", REALM)


@BOTH
def test_a_valid_key_reaches_me(live: LiveServer, make: Keys, team: Team, header: Any) -> None:
    issued = make.workspace_key(scopes=["links:read"])
    with live.client() as client:
        response = client.get("/v1/me", headers=header(issued.plaintext))
    assert response.status_code == 200
    assert response.json() == {
        "account_id": team.account_id,
        "workspace": {"name": "Acme"},
        "credential": {
            "id": issued.view.id,
            "name": "test key",
            "kind": "workspace_key",
            "platform": None,
            "scopes": ["links:read"],
        },
    }
    assert response.headers["ratelimit-limit"] == "60"
    assert response.headers["ratelimit-remaining"] == "59"


GOOD = credentials.generate(CredentialKind.WORKSPACE_KEY).plaintext


@BOTH
@pytest.mark.parametrize(
    "value",
    [
        GOOD.replace("nim_", "sk_live_", 1),
        GOOD[:-1] + ("A" if GOOD[-1] != "A" else "B"),
        GOOD[:30],
        "nim_key_",
        "x" * 16384,
        "null",
    ],
    ids=["wrong-prefix", "bad-checksum", "truncated", "prefix-only", "16kb", "null"],
)
def test_malformed_api_key(live: LiveServer, header: Any, value: str) -> None:
    with live.client() as client:
        body = assert_error(client.get("/v1/me", headers=header(value)), 401, "malformed_api_key", INVALID_TOKEN)
    assert "header name" in body["message"] and "nim_" in body["message"]


@pytest.mark.parametrize(
    "raw_headers",
    [
        [(b"authorization", b"")],
        [(b"x-nim-api-key", b"")],
        [(b"authorization", b"Bearer")],
        [(b"authorization", b"Bearer ")],
        [(b"authorization", b"Basic dXNlcjpwYXNz")],
        [(b"authorization", b"Token " + GOOD.encode())],
        [(b"authorization", GOOD.encode())],
        [(b"authorization", "Bearer nim_key_é€😀".encode())],
        [(b"x-nim-api-key", b"\xff\xfe\xfd")],
        [(b"x-nim-api-key", GOOD.encode()), (b"x-nim-api-key", GOOD.encode())],
        [(b"authorization", b"Bearer " + GOOD.encode()), (b"authorization", b"Bearer " + GOOD.encode())],
        [(b"authorization", b"Bearer " + GOOD.encode()), (b"x-nim-api-key", GOOD[:-2].encode() + b"AA")],
        [(b"authorization", b"Bearer " + b"A" * 16384)],
    ],
    ids=["empty-auth", "empty-key", "bearer-alone", "bearer-space", "basic", "token-scheme", "no-scheme",
         "non-ascii", "latin1-bytes", "repeated-key", "repeated-auth", "two-different", "bearer-16kb"],
)  # fmt: skip
def test_malformed_headers_of_every_kind_get_401_never_500(live: LiveServer, raw_headers: list[Any]) -> None:
    response = raw_request(live.base_url, "GET", "/v1/me", raw_headers)
    assert response.status == 401, response.body
    body = response.json()
    assert isinstance(body, dict) and body["error"] == "malformed_api_key" and "header" in body["message"]
    assert response.headers["www-authenticate"] == INVALID_TOKEN


@BOTH
def test_invalid_api_key_unknown_revoked_and_past_grace(live: LiveServer, make: Keys, team: Team, header: Any) -> None:
    unknown = credentials.generate(CredentialKind.WORKSPACE_KEY).plaintext
    revoked = make.workspace_key()
    keys.revoke_key(make.database, team.admin, revoked.view.id)
    rotated = make.workspace_key()
    keys.rotate_key(make.database, make.hasher, team.admin, rotated.view.id, grace_seconds=0)
    with live.client() as client:
        for presented in (unknown, revoked.plaintext, rotated.plaintext):
            body = assert_error(client.get("/v1/me", headers=header(presented)), 401, "invalid_api_key", INVALID_TOKEN)
            assert "reconnect" not in body


@BOTH
def test_token_expired_for_a_partner_token(live: LiveServer, make: Keys, header: Any) -> None:
    token = make.partner_token(expires_in=-1)
    with live.client() as client:
        body = assert_error(client.get("/v1/me", headers=header(token)), 401, "token_expired", INVALID_TOKEN)
    assert "refresh" in body["message"]


@BOTH
def test_reconnect_required_for_a_revoked_partner_token(live: LiveServer, make: Keys, team: Team, header: Any) -> None:
    token = make.partner_token()
    with live.client() as client:
        assert client.get("/v1/me", headers=header(token)).status_code == 200
        keys.revoke_key(make.database, team.admin, credentials.parse(token).public_id)
        live.resources.guard.forget(credentials.parse(token).public_id)  # what the admin API does after revoking
        body = assert_error(client.get("/v1/me", headers=header(token)), 401, "reconnect_required", INVALID_TOKEN)
    assert body["reconnect"] is True


@BOTH
def test_api_key_account_mismatch(live: LiveServer, make: Keys, team: Team, header: Any) -> None:
    issued = make.workspace_key()
    with live.client() as client:
        response = client.get(f"/v1/workspaces/{team.other_account_id}/links", headers=header(issued.plaintext))
        body = assert_error(response, 403, "api_key_account_mismatch")
        assert team.account_id in body["message"]
        response = client.get("/v1/workspaces/acc_doesnotexist/links", headers=header(issued.plaintext))
        assert_error(response, 403, "api_key_account_mismatch")


@BOTH
def test_insufficient_scope(live: LiveServer, make: Keys, team: Team, header: Any) -> None:
    issued = make.workspace_key(scopes=["links:read"])
    path = f"/v1/workspaces/{team.account_id}/links"
    with live.client() as client:
        assert client.get(path, headers=header(issued.plaintext)).status_code == 200
        response = client.post(path, headers=header(issued.plaintext), json={"destination": "https://example.com/"})
        body = assert_error(response, 403, "insufficient_scope", f'{REALM}, error="insufficient_scope"')
        assert "links:write" in body["message"]


@BOTH
def test_ip_not_allowed(live: LiveServer, make: Keys, header: Any) -> None:
    outside = make.workspace_key(allowed_ips=["10.0.0.0/8", "2001:db8::/32"])
    inside = make.workspace_key(allowed_ips=["10.0.0.0/8", "127.0.0.0/8"])
    with live.client() as client:
        body = assert_error(client.get("/v1/me", headers=header(outside.plaintext)), 403, "ip_not_allowed")
        assert "127.0.0.1" in body["message"]
        assert client.get("/v1/me", headers=header(inside.plaintext)).status_code == 200
        # X-Forwarded-For is not believed from a peer outside TOKEN_BROKER_TRUSTED_PROXIES
        spoofed = {**header(outside.plaintext), "X-Forwarded-For": "10.1.2.3"}
        assert_error(client.get("/v1/me", headers=spoofed), 403, "ip_not_allowed")


def test_forwarded_for_is_believed_from_trusted_proxies(database_url: str, make: Keys) -> None:
    key = make.workspace_key(allowed_ips=["203.0.113.0/24"])
    trusted = (ipaddress.ip_network("127.0.0.1/32"),)
    with live_server(database_url, trusted_proxies=trusted) as server, server.client() as client:
        forwarded = {**bearer(key.plaintext), "X-Forwarded-For": "203.0.113.50"}
        assert client.get("/v1/me", headers=forwarded).status_code == 200
        outside = {**bearer(key.plaintext), "X-Forwarded-For": "198.51.100.1"}
        assert_error(client.get("/v1/me", headers=outside), 403, "ip_not_allowed")
        assert_error(client.get("/v1/me", headers=bearer(key.plaintext)), 403, "ip_not_allowed")


@BOTH
def test_not_found(live: LiveServer, make: Keys, team: Team, header: Any) -> None:
    issued = make.workspace_key()
    with live.client() as client:
        response = client.get(f"/v1/workspaces/{team.account_id}/links/lnk_nope", headers=header(issued.plaintext))
        assert_error(response, 404, "not_found")
        assert_error(client.get("/v1/no/such/endpoint", headers=header(issued.plaintext)), 404, "not_found")


@BOTH
def test_invalid_request_names_the_field(live: LiveServer, make: Keys, team: Team, header: Any) -> None:
    issued = make.workspace_key()
    path = f"/v1/workspaces/{team.account_id}/links"
    with live.client() as client:
        for body, field in [
            ({"destination": "javascript:alert(1)"}, "destination"),
            ({}, "destination"),
            ({"destination": "https://example.com/", "slug": "bad slug!"}, "slug"),
            ({"destination": "https://example.com/", "colour": "red"}, "colour"),
        ]:
            response = client.post(path, headers=header(issued.plaintext), json=body)
            assert field in assert_error(response, 422, "invalid_request")["message"]
        for raw in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"{" * 100000):
            response = client.post(path, headers={**header(issued.plaintext), "Content-Type": "application/json"},
                                   content=raw)  # fmt: skip
            assert response.status_code in (413, 422), response.text
        assert_error(client.get(f"{path}?limit=abc", headers=header(issued.plaintext)), 422, "invalid_request")


@BOTH
def test_rate_limited_per_key(live: LiveServer, make: Keys, header: Any) -> None:
    limited = make.workspace_key(rate_limits=["3/minute"])
    other = make.workspace_key(rate_limits=["3/minute"])
    with live.client() as client:
        for remaining in (2, 1, 0):
            response = client.get("/v1/me", headers=header(limited.plaintext))
            assert response.status_code == 200
            assert response.headers["ratelimit-remaining"] == str(remaining)
        response = client.get("/v1/me", headers=header(limited.plaintext))
        assert_error(response, 429, "rate_limited")
        assert response.headers["ratelimit-limit"] == "3"
        assert response.headers["ratelimit-remaining"] == "0"
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert int(response.headers["ratelimit-reset"]) <= 60
        assert client.get("/v1/me", headers=header(other.plaintext)).status_code == 200  # limits never touch


def test_a_change_made_elsewhere_is_honoured_within_a_second(live: LiveServer, make: Keys, team: Team) -> None:
    issued = make.workspace_key()
    rotated_key = make.workspace_key()
    with live.client() as client:
        assert client.get("/v1/me", headers=bearer(issued.plaintext)).status_code == 200
        assert client.get("/v1/me", headers=bearer(rotated_key.plaintext)).status_code == 200
        # as the CLI would: straight to the store, with no word to this server
        keys.revoke_key(make.database, team.admin, issued.view.id)
        keys.rotate_key(make.database, make.hasher, team.admin, rotated_key.view.id, grace_seconds=0)
        answered = time.monotonic()
        statuses = []
        # Sampled until three samples were sent past the second, however slowly the machine answers; each sample's
        # time is taken before its requests are sent, so a late answer to an early request never counts as late.
        while sum(elapsed > 1.0 for elapsed, _, _ in statuses) < 3:
            statuses.append(
                (
                    time.monotonic() - answered,
                    client.get("/v1/me", headers=bearer(issued.plaintext)).status_code,
                    client.get("/v1/me", headers=bearer(rotated_key.plaintext)).status_code,
                )
            )
    late = [(a, b) for elapsed, a, b in statuses if elapsed > 1.0]
    assert all(status == (401, 401) for status in late), statuses


def test_errors_never_echo_the_presented_key(live: LiveServer, make: Keys, team: Team) -> None:
    issued = make.workspace_key()
    keys.revoke_key(make.database, team.admin, issued.view.id)
    with live.client() as client:
        for presented in (issued.plaintext, issued.plaintext[:-1] + "Z", issued.plaintext + "x"):
            response = client.get("/v1/me", headers=bearer(presented))
            assert response.status_code == 401
            assert presented not in response.text and issued.plaintext[20:40] not in response.text
