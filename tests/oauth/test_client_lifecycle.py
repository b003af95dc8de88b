"""An OAuth client's lifecycle from the operator's CLI against a running server: listed, its secret rotated with a
grace window for the old one, and revoked, which ends each of its connections as a disconnect would."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from tests.browser_forms import sign_in
from tests.connect import Platform, authorize_params, connect, exchange, get_code, refresh, register
from tests.live import LiveServer
from tests.servers import command_env, console_script
from tests.support import PASSWORD, Team
from token_broker.services import client_lifecycle, connections
from token_broker.services.actors import Actor
from token_broker.store.database import Database
from token_broker.store.models import AuditEvent
from token_broker.store.oauth_models import OAuthClient

POLL_SECONDS = 30.0

Cli = Callable[..., tuple[int, object]]


@pytest.fixture
def cli(database_url: str) -> Cli:
    env = command_env(database_url)

    def run(*args: str) -> tuple[int, object]:
        done = subprocess.run([console_script(), *args, "--json"], env=env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        return done.returncode, json.loads(done.stdout)

    return run


def me(live: LiveServer, token: str) -> httpx.Response:
    return httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def introspect(live: LiveServer, platform: Platform, secret: str, token: str) -> httpx.Response:
    return httpx.post(f"{live.base_url}/oauth/introspect", data={"token": token}, auth=(platform.client_id, secret),
                      timeout=30)  # fmt: skip


def until(check: Callable[[], bool]) -> bool:
    """Whether check() becomes true within a generous bound (the machine may be busy)."""
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def audit_rows(database: Database, action: str) -> list[AuditEvent]:
    with database.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_client_list_shows_every_client_or_one_workspaces(live: LiveServer, team: Team, cli: Cli) -> None:
    database = live.resources.database
    zapier = register(database, "zapier")
    ours = register(database, "n8n", team.account_id, team.admin)
    theirs = client_lifecycle.list_clients(database, Actor.operator())
    assert [view.client_id for view in theirs] == [ours.client_id, zapier.client_id]
    status, listed = cli("client", "list")
    assert status == 0 and isinstance(listed, list)
    assert [item["client_id"] for item in listed] == [ours.client_id, zapier.client_id]
    assert {"client_id", "platform", "workspace", "redirect_uris", "status", "created_at"} <= set(listed[0])
    assert (listed[0]["workspace"], listed[0]["platform"], listed[0]["status"]) == (team.account_id, "n8n", "active")
    assert listed[1]["workspace"] is None and listed[1]["redirect_uris"] == [zapier.redirect_uri]
    assert "client_secret" not in listed[0] and ours.client_secret not in json.dumps(listed)
    status, mine = cli("client", "list", "--workspace", team.account_id)
    assert status == 0 and [item["client_id"] for item in mine] == [ours.client_id]  # type: ignore[union-attr]
    status, refused = cli("client", "list", "--workspace", "acc_doesnotexist00000")
    assert status == 1 and refused == {"error": "not_found", "message": refused["message"]}  # type: ignore[index]


def test_revoking_a_client_ends_its_connections_and_its_use(live: LiveServer, team: Team, cli: Cli) -> None:
    database = live.resources.database
    platform = register(database, "zapier")
    bystander = register(database, "make")
    first = connect(live.base_url, platform, team.account_id)
    second = connect(live.base_url, platform, team.account_id)
    kept = connect(live.base_url, bystander, team.account_id)
    pending = get_code(live.base_url, platform, team.account_id)
    assert me(live, first["access_token"]).status_code == 200
    status, revoked = cli("client", "revoke", platform.client_id)
    assert status == 0 and revoked == {"client_id": platform.client_id, "status": "revoked", "connections_ended": 2}

    for tokens in (first, second):  # the platform is told to reconnect, as after a disconnect
        assert until(lambda t=tokens: me(live, t["access_token"]).status_code == 401)  # type: ignore[misc]
        assert me(live, tokens["access_token"]).json()["error"] == "reconnect_required"
        answer = refresh(live.base_url, platform, tokens["refresh_token"])
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    redeemed = exchange(live.base_url, platform, pending)
    assert redeemed.status_code == 400 and redeemed.json()["error"] == "invalid_grant"
    with live.client() as browser:  # it can no longer authorize: an error page, never a redirect
        assert sign_in(browser, "admin@acme.example", PASSWORD).status_code == 303
        page = browser.get("/oauth/authorize", params=authorize_params(platform))
        assert page.status_code == 400 and "revoked" in page.text and "location" not in page.headers
    looked = introspect(live, platform, platform.client_secret, kept["access_token"])
    assert looked.status_code == 401 and looked.json()["error"] == "invalid_client"

    assert me(live, kept["access_token"]).status_code == 200  # another client's connection is untouched
    views = {view.client_id: view.status for view in connections.list_connections(database, team.admin,
                                                                                   team.account_id)}  # fmt: skip
    assert views == {platform.client_id: "disconnected", bystander.client_id: "active"}
    [ended, *_] = connections.list_connections(database, team.admin, team.account_id)[1:]
    assert ended.disconnect_reason == "client_revoked" and ended.disconnected_by == "operator"

    status, again = cli("client", "revoke", platform.client_id)
    assert status == 1 and again["error"] == "conflict"  # type: ignore[index]
    status, missing = cli("client", "revoke", "zapier_doesnotexist")
    assert status == 1 and missing["error"] == "not_found"  # type: ignore[index]
    status, listed = cli("client", "list")
    assert {item["client_id"]: item["status"] for item in listed} == {  # type: ignore[union-attr]
        platform.client_id: "revoked",
        bystander.client_id: "active",
    }
    [row, conflict, unknown] = audit_rows(database, "client.revoked")
    assert (conflict.outcome, conflict.reason, unknown.outcome, unknown.reason) == (
        "refused",
        "conflict",
        "refused",
        "not_found",
    )
    assert (row.actor, row.outcome, row.target_id, row.workspace_id) == ("operator", "ok", platform.client_id, None)
    assert row.details == {"platform": "zapier", "connections_ended": 2}
    ended_rows = [
        r for r in audit_rows(database, "connection.disconnected") if r.details.get("reason") == "client_revoked"
    ]
    assert len(ended_rows) == 2 and all(r.workspace_id is not None for r in ended_rows)


def test_rotating_a_secret_keeps_connections_and_the_old_secret_for_the_grace(
    live: LiveServer, team: Team, cli: Cli
) -> None:
    database = live.resources.database
    platform = register(database, "n8n", team.account_id, team.admin)
    tokens = connect(live.base_url, platform, team.account_id, style="basic")
    old_secret = platform.client_secret
    status, rotated = cli("client", "rotate", platform.client_id, "--grace", "3600")
    assert status == 0 and isinstance(rotated, dict)
    assert set(rotated) == {"client_id", "client_secret", "grace_until"} and rotated["grace_until"]
    new_secret = rotated["client_secret"]
    assert new_secret != old_secret
    with database.read() as session:
        row = session.scalars(select(OAuthClient).where(OAuthClient.client_id == platform.client_id)).one()
        assert new_secret not in (row.secret_hash, row.previous_secret_hash)
    for secret in (old_secret, new_secret):  # both work within the grace window
        assert introspect(live, platform, secret, tokens["access_token"]).json()["active"] is True
    platform.client_secret = old_secret
    renewed = refresh(live.base_url, platform, tokens["refresh_token"], style="basic")
    assert renewed.status_code == 200, renewed.text
    assert me(live, renewed.json()["access_token"]).status_code == 200  # the connection lives on

    # A second rotation with a tiny grace: the secret it replaces stops working soon after, the new one works.
    status, tiny = cli("client", "rotate-secret", platform.client_id, "--grace", "1")
    assert status == 0 and isinstance(tiny, dict)
    newest = tiny["client_secret"]
    assert until(lambda: introspect(live, platform, new_secret, tokens["access_token"]).status_code == 401)
    assert introspect(live, platform, old_secret, tokens["access_token"]).status_code == 401  # older grace ended
    platform.client_secret = newest
    assert refresh(live.base_url, platform, renewed.json()["refresh_token"], style="basic").status_code == 200

    status, instant = cli("client", "rotate", platform.client_id, "--grace", "0")
    assert status == 0 and instant["grace_until"] is None  # type: ignore[index]
    assert introspect(live, platform, newest, tokens["access_token"]).status_code == 401
    status, bad = cli("client", "rotate", platform.client_id, "--grace", "9999999")
    assert status == 2 and bad["error"] == "invalid_request"  # type: ignore[index]
    rows = [row for row in audit_rows(database, "client.secret_rotated") if row.outcome == "ok"]
    assert [row.details["grace_seconds"] for row in rows] == [3600, 1, 0]
    assert all(row.workspace_id is not None and row.target_id == platform.client_id for row in rows)
    for row in rows:
        assert old_secret not in json.dumps(row.details) and new_secret not in json.dumps(row.details)
