"""Signed reports through a real server, on SQLite and PostgreSQL: what a match does to keys and partner tokens, and
GitHub's documented answer."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import select

from tests.browser_forms import sign_in
from tests.connect import connect, refresh, register
from tests.live import LiveServer, live_server
from tests.makers import Keys
from tests.scanning.keysets import SigningKey, body_of, match, send, token_hash
from tests.support import PASSWORD, Team
from token_broker import credentials
from token_broker.credentials import CredentialKind
from token_broker.services import admin_notices, connections, keys, leak_settings
from token_broker.store.models import AuditEvent

LEAK_URL = "https://github.com/octo/repo/blob/abc/config.py"


def me(live: LiveServer, token: str) -> httpx.Response:
    return httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def refused_within(live: LiveServer, token: str, seconds: float = 10.0) -> httpx.Response:
    """The first refusal of the token by the API; fails if it is still accepted after a generous bound."""
    deadline = time.monotonic() + seconds
    while True:
        answer = me(live, token)
        if answer.status_code == 401 or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def leak_audit_rows(live: LiveServer) -> list[AuditEvent]:
    with live.resources.database.read() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "credential.leaked")))


def test_a_signed_report_of_a_live_key_revokes_it(live: LiveServer, team: Team, make: Keys,
                                                  signing_key: SigningKey) -> None:  # fmt: skip
    key = make.workspace_key(name="Leaky")
    assert key.plaintext is not None and me(live, key.plaintext).status_code == 200  # cached as good by the guard
    answer = send(live.base_url, signing_key, body_of(match(key.plaintext, url=LEAK_URL, source="commit")))
    assert answer.status_code == 200, answer.text
    assert answer.json() == [
        {"token_hash": token_hash(key.plaintext), "token_type": "token_broker_credential", "label": "true_positive"}
    ]
    refused = refused_within(live, key.plaintext)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_api_key"
    [view] = keys.list_keys(live.resources.database, team.admin, team.account_id)
    assert view.status == "revoked"
    [row] = leak_audit_rows(live)
    assert row.actor == "secret-scanning" and row.outcome == "ok" and row.target_id == key.view.id
    assert row.details["url"] == LEAK_URL and row.details["source"] == "commit"
    assert row.details["response"] == "revoked"
    types = [notice.type for notice in admin_notices.recent_notices(live.resources.database, team.account_id)]
    assert "credential.leaked" in types and "credential.revoked" in types
    [leaked] = [n for n in admin_notices.recent_notices(live.resources.database, team.account_id)
                if n.type == "credential.leaked"]  # fmt: skip
    assert leaked.data["report"]["url"] == LEAK_URL and leaked.data["response"] == "revoked"
    assert key.plaintext not in str(leaked.data) and key.plaintext not in str(row.details)


def test_a_signed_report_of_a_partner_token_disconnects_the_platform(live: LiveServer, team: Team,
                                                                    signing_key: SigningKey) -> None:  # fmt: skip
    platform = register(live.resources.database, "zapier")
    tokens = connect(live.base_url, platform, team.account_id)
    assert me(live, tokens["access_token"]).status_code == 200
    answer = send(live.base_url, signing_key, body_of(match(tokens["access_token"])))
    assert answer.status_code == 200 and answer.json()[0]["label"] == "true_positive"
    refused = refused_within(live, tokens["access_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "reconnect_required"
    renewed = refresh(live.base_url, platform, tokens["refresh_token"])
    assert renewed.status_code == 400 and renewed.json()["error"] == "invalid_grant"
    [connection] = connections.list_connections(live.resources.database, team.admin, team.account_id)
    assert connection.status == "disconnected" and connection.disconnect_reason == "token_leaked"
    assert connection.disconnected_by == "secret-scanning"
    [row] = leak_audit_rows(live)
    assert row.details["response"] == "disconnected" and row.details["connection_id"] == connection.id
    types = {notice.type for notice in admin_notices.recent_notices(live.resources.database, team.account_id)}
    assert {"credential.leaked", "integration.disconnected"} <= types


def test_a_leaked_refresh_token_disconnects_too(live: LiveServer, team: Team, signing_key: SigningKey) -> None:
    platform = register(live.resources.database, "make")
    tokens = connect(live.base_url, platform, team.account_id)
    answer = send(live.base_url, signing_key, body_of(match(tokens["refresh_token"])))
    assert answer.json()[0]["label"] == "true_positive"
    assert refresh(live.base_url, platform, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert refused_within(live, tokens["access_token"]).json()["error"] == "reconnect_required"


def test_notify_only_tells_the_admins_and_revokes_nothing(live: LiveServer, team: Team, make: Keys,
                                                         signing_key: SigningKey) -> None:  # fmt: skip
    leak_settings.set_leak_response(live.resources.database, team.owner, team.account_id, "notify")
    key = make.workspace_key(name="Kept")
    platform = register(live.resources.database, "zapier")
    tokens = connect(live.base_url, platform, team.account_id)
    assert key.plaintext is not None
    answer = send(live.base_url, signing_key, body_of(match(key.plaintext), match(tokens["access_token"])))
    assert [item["label"] for item in answer.json()] == ["true_positive", "true_positive"]
    assert me(live, key.plaintext).status_code == 200 and me(live, tokens["access_token"]).status_code == 200
    assert refresh(live.base_url, platform, tokens["refresh_token"]).status_code == 200
    leaked = [
        n
        for n in admin_notices.recent_notices(live.resources.database, team.account_id)
        if n.type == "credential.leaked"
    ]
    assert sorted(n.data["response"] for n in leaked) == ["notified", "notified"]
    assert sorted(row.details["response"] for row in leak_audit_rows(live)) == ["notified", "notified"]
    assert all(view.status == "active" for view in keys.list_keys(live.resources.database, team.admin, team.account_id))


def test_dead_unknown_and_forged_tokens_are_answered_and_change_nothing(live: LiveServer, team: Team, make: Keys,
                                                                       signing_key: SigningKey) -> None:  # fmt: skip
    live_key, revoked = make.workspace_key(name="Live"), make.workspace_key(name="Dead")
    assert live_key.plaintext is not None and revoked.plaintext is not None
    keys.revoke_key(live.resources.database, team.admin, revoked.view.id)
    real_id = live_key.view.id
    wrong_secret = credentials.compose(CredentialKind.WORKSPACE_KEY, real_id, "A" * 32).plaintext
    unknown = credentials.generate(CredentialKind.WORKSPACE_KEY).plaintext
    bad_checksum = live_key.plaintext[:-6] + ("000000" if not live_key.plaintext.endswith("000000") else "111111")
    wrong_kind = credentials.compose(CredentialKind.PARTNER_ACCESS, real_id, live_key.plaintext[21:53]).plaintext
    reported = [revoked.plaintext, wrong_secret, unknown, bad_checksum, wrong_kind]
    answer = send(live.base_url, signing_key, body_of(*(match(token) for token in reported)))
    assert answer.status_code == 200, answer.text
    assert [item["label"] for item in answer.json()] == ["true_positive"] + ["false_positive"] * 4
    assert [item["token_hash"] for item in answer.json()] == [token_hash(token) for token in reported]
    assert me(live, live_key.plaintext).status_code == 200
    assert leak_audit_rows(live) == []
    assert "credential.leaked" not in {
        n.type for n in admin_notices.recent_notices(live.resources.database, team.account_id)
    }


def test_the_answer_is_githubs_documented_format(live: LiveServer, make: Keys, signing_key: SigningKey) -> None:
    key = make.workspace_key()
    assert key.plaintext is not None
    unknown = credentials.generate(CredentialKind.PARTNER_ACCESS).plaintext
    body = body_of(match(unknown, type="nim_partner_token"), match(key.plaintext, type="nim_api_key", url=""))
    answer = send(live.base_url, signing_key, body)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    items = answer.json()
    assert isinstance(items, list) and len(items) == 2
    for item, (token, kind, label) in zip(
        items,
        [(unknown, "nim_partner_token", "false_positive"), (key.plaintext, "nim_api_key", "true_positive")],
        strict=True,
    ):
        assert set(item) == {"token_hash", "token_type", "label"}
        assert item == {"token_hash": token_hash(token), "token_type": kind, "label": label}
        assert len(item["token_hash"]) == 64 and item["token_hash"] == item["token_hash"].lower()


def test_a_leaked_previous_secret_ends_the_grace_and_the_current_secret_keeps_working(
    live: LiveServer, team: Team, make: Keys, signing_key: SigningKey
) -> None:
    old = make.workspace_key(name="Rotated")
    assert old.plaintext is not None
    new = keys.rotate_key(live.resources.database, make.hasher, team.admin, old.view.id, grace_seconds=3600)
    assert new.plaintext is not None and me(live, old.plaintext).status_code == 200
    answer = send(live.base_url, signing_key, body_of(match(old.plaintext)))
    assert answer.json()[0]["label"] == "true_positive"
    assert refused_within(live, old.plaintext).status_code == 401
    assert me(live, new.plaintext).status_code == 200
    [row] = leak_audit_rows(live)
    assert row.details["response"] == "grace_ended" and row.details["leaked"] == "previous_secret"


def test_the_panel_shows_the_leak_notice(live: LiveServer, team: Team, make: Keys, signing_key: SigningKey) -> None:
    key = make.workspace_key(name="Pasted in a gist")
    assert key.plaintext is not None
    send(live.base_url, signing_key, body_of(match(key.plaintext, url=LEAK_URL, source="gist_content")))
    with httpx.Client(base_url=live.base_url) as browser:
        sign_in(browser, "viewer@acme.example", PASSWORD)
        page = browser.get(f"/workspaces/{team.account_id}/api-access").text
    shown = page[page.index('id="notices"') : page.index('id="hooks"')]
    assert "Key “Pasted in a gist”" in shown and LEAK_URL in shown and "gist_content" in shown
    assert "it was revoked" in shown and key.plaintext not in page


def test_another_instance_refuses_the_reported_key_too(live: LiveServer, database_url: str, make: Keys,
                                                      signing_key: SigningKey) -> None:  # fmt: skip
    key = make.workspace_key(name="Everywhere")
    assert key.plaintext is not None
    with live_server(database_url) as other:
        assert me(other, key.plaintext).status_code == 200  # cached as good by the other instance's guard
        answer = send(live.base_url, signing_key, body_of(match(key.plaintext)))
        assert answer.json()[0]["label"] == "true_positive"
        assert refused_within(other, key.plaintext).status_code == 401


def test_a_token_reported_twice_in_one_report_is_acted_on_once(live: LiveServer, make: Keys,
                                                              signing_key: SigningKey) -> None:  # fmt: skip
    key = make.workspace_key(name="Twice")
    assert key.plaintext is not None
    body = body_of(match(key.plaintext, source="commit"), match(key.plaintext, source="issue_comment"))
    answer = send(live.base_url, signing_key, body)
    assert [item["label"] for item in answer.json()] == ["true_positive", "true_positive"]
    assert [row.details["response"] for row in leak_audit_rows(live)] == ["revoked"]
