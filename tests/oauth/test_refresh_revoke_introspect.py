"""Refresh rotation with its replay window, reuse detection, RFC 7009 revocation and RFC 7662 introspection."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from tests.connect import connect, refresh, register
from tests.live import LiveServer
from tests.support import Team
from token_broker.services import connections
from token_broker.store.models import utcnow
from token_broker.store.oauth_models import RefreshToken


def me(live: LiveServer, token: str) -> httpx.Response:
    return httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_refresh_rotates_and_the_old_access_token_lives_out_its_time(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "make")
    first = connect(live.base_url, platform, team.account_id)
    second = refresh(live.base_url, platform, first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert second["expires_in"] == 3600 and second["account_id"] == team.account_id
    assert me(live, second["access_token"]).status_code == 200
    assert me(live, first["access_token"]).status_code == 200  # in-flight calls with the old token still work
    third = refresh(live.base_url, platform, second["refresh_token"]).json()
    assert me(live, third["access_token"]).status_code == 200


def test_a_retried_refresh_gets_the_same_pair(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "n8n", team.account_id, team.admin)
    first = connect(live.base_url, platform, team.account_id, style="basic")
    again = [refresh(live.base_url, platform, first["refresh_token"], style="basic").json() for _ in range(3)]
    assert again[0]["refresh_token"] == again[1]["refresh_token"] == again[2]["refresh_token"]
    assert again[0]["access_token"] == again[2]["access_token"]
    assert refresh(live.base_url, platform, again[0]["refresh_token"], style="basic").status_code == 200
    [connection] = connections.list_connections(live.resources.database, team.admin, team.account_id)
    assert connection.status == "active"


def test_a_refresh_token_reused_after_the_window_ends_the_family(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    first = connect(live.base_url, platform, team.account_id)
    second = refresh(live.base_url, platform, first["refresh_token"]).json()
    with live.resources.database.write() as session:
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.status == "rotated")
            .values(rotated_at=utcnow() - timedelta(minutes=5))
        )
    reused = refresh(live.base_url, platform, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert refresh(live.base_url, platform, second["refresh_token"]).json()["error"] == "invalid_grant"
    deadline_answer = me(live, second["access_token"])
    for _ in range(20):  # the change reaches the guard's cache within a second
        if deadline_answer.status_code == 401:
            break
        live.resources.guard.forget(deadline_answer.json()["credential"]["id"])
        deadline_answer = me(live, second["access_token"])
    assert deadline_answer.json()["error"] == "reconnect_required"
    [connection] = connections.list_connections(live.resources.database, team.admin, team.account_id)
    assert connection.status == "disconnected" and connection.disconnect_reason == "refresh_token_reused"


def test_introspection(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    tokens = connect(live.base_url, platform, team.account_id)
    url = f"{live.base_url}/oauth/introspect"
    auth = {"client_id": platform.client_id, "client_secret": platform.client_secret}
    active = httpx.post(url, data={"token": tokens["access_token"], **auth}).json()
    assert active["active"] is True and active["client_id"] == platform.client_id
    assert active["account_id"] == team.account_id and active["platform"] == "zapier"
    assert active["connection_id"].startswith("con_") and active["token_type"] == "Bearer"
    assert active["scope"] == tokens["scope"] and active["exp"] > active["iat"]
    refresh_info = httpx.post(url, data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token", **auth})
    assert refresh_info.json()["active"] is True
    other = register(live.resources.database, "make")
    foreign = httpx.post(url, data={"token": tokens["access_token"], "client_id": other.client_id,
                                    "client_secret": other.client_secret})  # fmt: skip
    assert foreign.json() == {"active": False}
    for junk in ("nonsense", tokens["access_token"][:-1], "nim_key_" + "A" * 51):
        assert httpx.post(url, data={"token": junk, **auth}).json() == {"active": False}
    assert httpx.post(url, data={"token": tokens["access_token"]}).status_code in (400, 401)
    odd_hint = httpx.post(url, data={"token": tokens["access_token"], "token_type_hint": "banana", **auth})
    assert odd_hint.json()["active"] is True


def test_revocation_by_the_platform_ends_the_connection(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "make")
    tokens = connect(live.base_url, platform, team.account_id)
    auth = {"client_id": platform.client_id, "client_secret": platform.client_secret}
    other = register(live.resources.database, "zapier")
    ignored = httpx.post(f"{live.base_url}/oauth/revoke", data={"token": tokens["refresh_token"],
                         "client_id": other.client_id, "client_secret": other.client_secret})  # fmt: skip
    assert ignored.status_code == 200 and me(live, tokens["access_token"]).status_code == 200
    answer = httpx.post(f"{live.base_url}/oauth/revoke", data={"token": tokens["refresh_token"], **auth})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert httpx.post(f"{live.base_url}/oauth/revoke", data={"token": "garbage", **auth}).status_code == 200
    introspected = httpx.post(f"{live.base_url}/oauth/introspect", data={"token": tokens["access_token"], **auth})
    assert introspected.json() == {"active": False}
    assert refresh(live.base_url, platform, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_an_admin_disconnect_sends_every_signal(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    tokens = connect(live.base_url, platform, team.account_id)
    [connection] = connections.list_connections(live.resources.database, team.admin, team.account_id)
    connections.disconnect(live.resources.database, team.admin, connection.id)
    live.resources.guard.forget(connection.credential_id or "")
    answer = me(live, tokens["access_token"])
    assert answer.status_code == 401 and answer.json() == {
        "error": "reconnect_required", "message": answer.json()["message"], "reconnect": True}  # fmt: skip
    assert refresh(live.base_url, platform, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    auth = {"client_id": platform.client_id, "client_secret": platform.client_secret}
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert httpx.post(f"{live.base_url}/oauth/introspect", data={"token": token, **auth}).json() == {
            "active": False
        }
    [after] = connections.list_connections(live.resources.database, team.viewer, team.account_id)
    assert after.status == "disconnected" and after.disconnected_by == team.admin.label
