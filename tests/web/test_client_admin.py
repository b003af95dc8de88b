"""n8n clients' lifecycle through the admin JSON API and the panel's forms, on SQLite and PostgreSQL: owners and admins
of the registering workspace list, rotate and revoke them; members, other workspaces and platform-wide clients are
refused, each refusal audited, and nothing of the client changes."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from tests.connect import Platform, connect, refresh, register
from tests.live import LiveServer
from tests.support import Team
from tests.web.admin_session import signed_in
from token_broker.store.database import Database
from token_broker.store.models import AuditEvent, Workspace

MANAGERS = ["owner", "admin"]


def api(account_id: str) -> str:
    return f"/api/workspaces/{account_id}/clients"


def panel(account_id: str) -> str:
    return f"/workspaces/{account_id}/api-access"


def me(live: LiveServer, token: str) -> httpx.Response:
    return httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def introspect(live: LiveServer, platform: Platform, secret: str, token: str) -> int:
    answer = httpx.post(f"{live.base_url}/oauth/introspect", data={"token": token},
                        auth=(platform.client_id, secret), timeout=30)  # fmt: skip
    return answer.status_code


def audit(database: Database, account_id: str, action: str) -> list[tuple[str, str | None]]:
    with database.read() as session:
        rows = session.execute(
            select(AuditEvent.outcome, AuditEvent.reason)
            .join(Workspace, Workspace.id == AuditEvent.workspace_id)
            .where(Workspace.account_id == account_id, AuditEvent.action == action)
            .order_by(AuditEvent.id)
        )
        return [(outcome, reason) for outcome, reason in rows]


@pytest.mark.parametrize("role", ["owner", "admin", "member", "viewer"])
def test_every_role_lists_only_its_workspaces_own_clients(live: LiveServer, team: Team, role: str) -> None:
    database = live.resources.database
    ours = register(database, "n8n", team.account_id, team.admin)
    register(database, "zapier")
    register(database, "n8n", team.other_account_id, team.outsider)
    with signed_in(live, role) as session:
        answer = session.get(api(team.account_id))
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        [listed] = answer.json()["data"]
        assert listed["client_id"] == ours.client_id and listed["workspace"] == team.account_id
        assert listed["status"] == "active" and listed["redirect_uris"] == [ours.redirect_uri]
        assert ours.client_secret not in answer.text
        assert session.get(api(team.other_account_id)).status_code == 404


@pytest.mark.parametrize("role", MANAGERS)
def test_managers_rotate_and_revoke_through_the_api(live: LiveServer, team: Team, role: str) -> None:
    database = live.resources.database
    platform = register(database, "n8n", team.account_id, team.admin)
    tokens = connect(live.base_url, platform, team.account_id)
    with signed_in(live, role) as session:
        rotated = session.post(f"{api(team.account_id)}/{platform.client_id}/rotate", {"grace_seconds": 0})
        assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
        body = rotated.json()
        assert body["client_id"] == platform.client_id and body["grace_until"] is None
        assert introspect(live, platform, platform.client_secret, tokens["access_token"]) == 401
        assert introspect(live, platform, body["client_secret"], tokens["access_token"]) == 200
        assert me(live, tokens["access_token"]).status_code == 200  # rotation keeps the connection
        assert (
            session.post(f"{api(team.account_id)}/{platform.client_id}/rotate", {"grace_seconds": "x"}).status_code
            == 422
        )
        revoked = session.post(f"{api(team.account_id)}/{platform.client_id}/revoke")
        assert revoked.status_code == 200
        assert revoked.json() == {"client_id": platform.client_id, "status": "revoked", "connections_ended": 1}
        # Revoked through this instance: refused at once, with the platforms' reconnect signals.
        assert me(live, tokens["access_token"]).json()["error"] == "reconnect_required"
        platform.client_secret = body["client_secret"]
        assert refresh(live.base_url, platform, tokens["refresh_token"]).json()["error"] == "invalid_grant"
        again = session.post(f"{api(team.account_id)}/{platform.client_id}/revoke")
        assert again.status_code == 409 and again.json()["error"] == "conflict"
        [listed] = session.get(api(team.account_id)).json()["data"]
        assert listed["status"] == "revoked" and listed["created_at"].endswith("Z")
    assert audit(database, team.account_id, "client.secret_rotated") == [("ok", None), ("refused", "invalid_request")]
    assert audit(database, team.account_id, "client.revoked") == [("ok", None), ("refused", "conflict")]


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_may_not_rotate_or_revoke(live: LiveServer, team: Team, role: str) -> None:
    database = live.resources.database
    platform = register(database, "n8n", team.account_id, team.admin)
    tokens = connect(live.base_url, platform, team.account_id)
    with signed_in(live, role) as session:
        for action in ("rotate", "revoke"):
            answer = session.post(f"{api(team.account_id)}/{platform.client_id}/{action}", {})
            assert answer.status_code == 403 and answer.json()["error"] == "forbidden", action
            assert (
                session.post(f"{api(team.account_id)}/{platform.client_id}/{action}", {}, csrf=False).status_code == 403
            )
        csrf = session.csrf_token
        for action in ("rotate", "revoke"):
            page = session.client.post(f"{panel(team.account_id)}/clients/{platform.client_id}/{action}",
                                       data={"csrf_token": csrf, "grace_seconds": "0"})  # fmt: skip
            assert page.status_code == 403 and "only owners and admins" in page.text
    assert introspect(live, platform, platform.client_secret, tokens["access_token"]) == 200
    assert me(live, tokens["access_token"]).status_code == 200
    assert audit(database, team.account_id, "client.revoked") == [("refused", "forbidden")] * 2
    assert audit(database, team.account_id, "client.secret_rotated") == [("refused", "forbidden")] * 2


@pytest.mark.parametrize("role", [*MANAGERS, "outsider"])
def test_other_workspaces_and_platform_wide_clients_are_not_found(live: LiveServer, team: Team, role: str) -> None:
    database = live.resources.database
    zapier = register(database, "zapier")
    acme = register(database, "n8n", team.account_id, team.admin)
    globex = register(database, "n8n", team.other_account_id, team.outsider)
    own, foreign = (team.other_account_id, acme) if role == "outsider" else (team.account_id, globex)
    other_account = team.account_id if role == "outsider" else team.other_account_id
    with signed_in(live, role) as session:
        for client_id in (foreign.client_id, zapier.client_id, "n8n_doesnotexist"):
            for action in ("rotate", "revoke"):
                for account in (own, other_account):
                    answer = session.post(f"{api(account)}/{client_id}/{action}", {})
                    assert answer.status_code == 404 and answer.json()["error"] == "not_found", (account, client_id)
                    form = {"csrf_token": session.csrf_token, "grace_seconds": "0"}
                    page = session.client.post(f"{panel(account)}/clients/{client_id}/{action}", data=form)
                    assert page.status_code == 404, (account, client_id, action)
        assert (
            zapier.client_id not in session.get(api(own)).text and foreign.client_id not in session.get(api(own)).text
        )
    with database.read() as store:
        changed = store.scalars(select(AuditEvent).where(AuditEvent.action.in_(["client.revoked",
                                                                                "client.secret_rotated"]),
                                                          AuditEvent.outcome == "ok")).all()  # fmt: skip
    assert changed == []


@pytest.mark.parametrize("role", MANAGERS)
def test_managers_rotate_and_revoke_with_the_panels_forms(live: LiveServer, team: Team, role: str) -> None:
    database = live.resources.database
    platform = register(database, "n8n", team.account_id, team.admin)
    tokens = connect(live.base_url, platform, team.account_id)
    base = panel(team.account_id)
    with signed_in(live, role) as session:
        page = session.client.get(base)
        rotate_action = f"{base}/clients/{platform.client_id}/rotate"
        revoke_action = f"{base}/clients/{platform.client_id}/revoke"
        assert f'action="{rotate_action}"' in page.text and f'action="{revoke_action}"' in page.text
        rotated = session.client.post(rotate_action, data={"csrf_token": session.csrf_token, "grace_seconds": "3600"})
        assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
        assert "Client Secret" in rotated.text and "keeps working until" in rotated.text
        secrets_shown = set(re.findall(r"[0-9A-Za-z]{40}", rotated.text)) - {platform.client_secret}
        new_secret = next(s for s in secrets_shown if introspect(live, platform, s, tokens["access_token"]) == 200)
        assert introspect(live, platform, platform.client_secret, tokens["access_token"]) == 200  # the grace
        assert new_secret not in session.client.get(base).text  # shown once, by the POST
        bad = session.client.post(rotate_action, data={"csrf_token": session.csrf_token, "grace_seconds": "-1"})
        assert bad.status_code == 303 and "Choose how long" in session.client.get(base).text
        forged = session.client.post(revoke_action, data={"csrf_token": "forged"})
        assert forged.status_code == 403
        revoked = session.client.post(revoke_action, data={"csrf_token": session.csrf_token})
        assert revoked.status_code == 303 and revoked.headers["location"] == f"{base}#n8n"
        after = session.client.get(base).text
        assert "was revoked; 1 connection ended" in after and f'action="{revoke_action}"' not in after
    assert me(live, tokens["access_token"]).json()["error"] == "reconnect_required"
    assert introspect(live, platform, new_secret, tokens["access_token"]) == 401
    assert audit(database, team.account_id, "client.secret_rotated")[0] == ("ok", None)
    assert audit(database, team.account_id, "client.revoked") == [("ok", None)]
