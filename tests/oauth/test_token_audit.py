"""Token events land in the workspace's audit log, in the transaction of the change, with the connection and the
address they came from: refreshes (replays within the window flagged), reuse that ends a family, code replays that
end a connection, and RFC 7009 revocations; found through the audit API's filters and on the audit page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from tests.browser_forms import sign_in
from tests.connect import Platform, connect, get_code, register
from tests.live import LiveServer
from tests.support import PASSWORD, Team
from tests.web.admin_session import signed_in
from token_broker.store.models import utcnow
from token_broker.store.oauth_models import Connection, RefreshToken


def post_from(live: LiveServer, address: str, path: str, platform: Platform, form: dict[str, str]) -> httpx.Response:
    """A request of the platform's own client, sent from `address` (a loopback alias)."""
    body = {**form, "client_id": platform.client_id, "client_secret": platform.client_secret}
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30) as client:
        return client.post(f"{live.base_url}{path}", data=body)


def audit(live: LiveServer, team: Team, **filters: str) -> list[dict[str, Any]]:
    with signed_in(live, "admin") as session:
        answer = session.get(f"/api/workspaces/{team.account_id}/audit", limit="100", **filters)
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, Any]] = answer.json()["data"]
        return rows


def connection_of(live: LiveServer, access_token: str) -> str:
    answer = httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {access_token}"}, timeout=30)
    with live.resources.database.read() as session:
        found = session.scalars(select(Connection.public_id).order_by(Connection.id.desc())).first()
    assert answer.status_code == 200 and found is not None
    return found


def test_refreshes_and_replays_are_audited_with_their_address(live: LiveServer, team: Team) -> None:
    zapier = register(live.resources.database, "zapier")
    first = connect(live.base_url, zapier, team.account_id)
    connection_id = connection_of(live, first["access_token"])
    rotated = post_from(live, "127.0.0.5", "/oauth/token", zapier,
                        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})  # fmt: skip
    assert rotated.status_code == 200
    replayed = post_from(live, "127.0.0.6", "/oauth/token", zapier,
                         {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})  # fmt: skip
    assert replayed.json()["refresh_token"] == rotated.json()["refresh_token"]  # within the window: the same pair

    rows = audit(live, team, action="token.refreshed")
    assert [(row["outcome"], row["details"]["replay"], row["client_address"]) for row in rows] == [
        ("ok", True, "127.0.0.6"),
        ("ok", False, "127.0.0.5"),
    ]
    assert {row["target_id"] for row in rows} == {connection_id}
    assert {row["actor"] for row in rows} == {f"client:{zapier.client_id}"}
    assert all(row["details"]["platform"] == "zapier" for row in rows)
    by_client = audit(live, team, actor=f"client:{zapier.client_id}", outcome="ok")
    assert {row["action"] for row in by_client} >= {"token.refreshed", "connection.created"}

    # presented again after the window: taken for a stolen copy, the family ends, and the log says so
    with live.resources.database.write() as session:
        session.execute(update(RefreshToken).where(RefreshToken.status == "rotated")
                        .values(rotated_at=utcnow() - timedelta(minutes=5)))  # fmt: skip
    reused = post_from(live, "127.0.0.7", "/oauth/token", zapier,
                       {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})  # fmt: skip
    assert reused.json()["error"] == "invalid_grant"
    [row] = audit(live, team, action="token.reused")
    assert (row["outcome"], row["reason"], row["client_address"], row["target_id"]) == (
        "refused", "invalid_grant", "127.0.0.7", connection_id)  # fmt: skip
    assert row["details"]["connection_ended"] is True and row["details"]["replay"] is True
    # after that, the successor's refresh is refused in the same workspace's log
    late = post_from(live, "127.0.0.8", "/oauth/token", zapier,
                     {"grant_type": "refresh_token", "refresh_token": rotated.json()["refresh_token"]})  # fmt: skip
    assert late.json()["error"] == "invalid_grant"
    refused = audit(live, team, action="token.refreshed", outcome="refused")
    assert [(row["client_address"], row["target_id"]) for row in refused] == [("127.0.0.8", connection_id)]


def test_code_replays_and_revocations_are_audited(live: LiveServer, team: Team) -> None:
    zapier = register(live.resources.database, "zapier")
    code = get_code(live.base_url, zapier, team.account_id)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": zapier.redirect_uri,
            "code_verifier": zapier.verifier}  # fmt: skip
    issued = post_from(live, "127.0.0.9", "/oauth/token", zapier, form)
    assert issued.status_code == 200
    connection_id = connection_of(live, issued.json()["access_token"])
    again = post_from(live, "127.0.0.10", "/oauth/token", zapier, form)
    assert again.json()["error"] == "invalid_grant"
    [row] = audit(live, team, action="code.replayed")
    assert (row["outcome"], row["reason"], row["client_address"], row["target_id"]) == (
        "refused", "invalid_grant", "127.0.0.10", connection_id)  # fmt: skip
    assert row["details"]["connection_ended"] is True

    tokens = connect(live.base_url, zapier, team.account_id)
    second = connection_of(live, tokens["access_token"])
    revoked = post_from(live, "127.0.0.11", "/oauth/revoke", zapier, {"token": tokens["refresh_token"]})
    assert revoked.status_code == 200
    [row] = audit(live, team, action="token.revoked")
    assert (row["outcome"], row["client_address"], row["target_id"]) == ("ok", "127.0.0.11", second)
    # revoking it again changes nothing and writes nothing
    assert post_from(live, "127.0.0.11", "/oauth/revoke", zapier, {"token": tokens["refresh_token"]}).status_code == 200
    assert len(audit(live, team, action="token.revoked")) == 1
    # none of it is in another workspace's log
    with signed_in(live, "outsider") as session:
        other = session.get(f"/api/workspaces/{team.other_account_id}/audit").json()["data"]
    assert not [row for row in other if row["action"].startswith(("token.", "code."))]


def test_the_audit_page_shows_and_filters_token_events(live: LiveServer, team: Team) -> None:
    zapier = register(live.resources.database, "zapier")
    first = connect(live.base_url, zapier, team.account_id)
    for address in ("127.0.0.12", "127.0.0.13"):  # a refresh, then its replay within the window
        answer = post_from(live, address, "/oauth/token", zapier,
                           {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})  # fmt: skip
        assert answer.status_code == 200
    with live.client() as browser:
        assert sign_in(browser, "admin@acme.example", PASSWORD).status_code == 303
        page = browser.get(f"/workspaces/{team.account_id}/audit", params={"action": "token.refreshed"})
        assert page.status_code == 200
        assert '<option value="token.refreshed" selected>' in page.text
        assert "127.0.0.12" in page.text and "127.0.0.13" in page.text
        assert page.text.count("data-replay") == 1
        assert "connection.created" not in page.text.split("<tbody>")[1]
