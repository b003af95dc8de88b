"""The panel's pages and forms without a browser, on SQLite and PostgreSQL: who may post what, CSRF on every form,
flashes shown once, headers, and the switcher."""

from __future__ import annotations

import re
from urllib.parse import unquote

import httpx
import pytest

from tests.browser_forms import forms, sign_in
from tests.connect import connect, register
from tests.live import LiveServer
from tests.makers import Keys
from tests.support import PASSWORD, Team
from token_broker.services import connections, keys
from token_broker.services.actors import Actor

N8N_BASE = "https://n8n.example.com"


def panel(team: Team, account_id: str | None = None) -> str:
    return f"/workspaces/{account_id or team.account_id}/api-access"


def session_for(client: httpx.Client, email: str) -> str:
    assert sign_in(client, email, PASSWORD).status_code == 303
    token: str = client.get("/api/session").json()["csrf_token"]
    return token


def post_forms(html: str) -> list[str]:
    return [str(form["action"]) for form in forms(html) if form["method"] == "post"]


def test_visitors_are_sent_to_sign_in_and_back(live: LiveServer, team: Team) -> None:
    with live.client() as client:
        page = client.get(panel(team), params={"x": "1"})
        assert page.status_code == 303
        assert unquote(page.headers["location"]) == f"/login?next={panel(team)}?x=1"
        assert sign_in(client, "viewer@acme.example", PASSWORD, next_path=panel(team)).headers["location"] == panel(
            team
        )
        assert client.get(panel(team)).status_code == 200


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_get_no_forms_and_cannot_post(live: LiveServer, team: Team, make: Keys, role: str) -> None:
    key = make.workspace_key(name="Untouchable")
    connect(live.base_url, register(live.resources.database, "zapier"), team.account_id)
    [connection] = connections.list_connections(live.resources.database, Actor.operator(), team.account_id)
    with live.client() as client:
        csrf = session_for(client, f"{role}@acme.example")
        page = client.get(panel(team))
        assert page.status_code == 200 and "Untouchable" in page.text and "Zapier" in page.text
        assert post_forms(page.text) == ["/logout"]
        assert f"/workspaces/{team.account_id}/audit" not in page.text
        attempts = {
            f"{panel(team)}/keys": {"name": "Sneaky"},
            f"{panel(team)}/keys/{key.view.id}/rotate": {"grace_seconds": "0"},
            f"{panel(team)}/keys/{key.view.id}/revoke": {},
            f"{panel(team)}/connections/{connection.id}/disconnect": {},
            f"{panel(team)}/clients": {"base_url": N8N_BASE},
        }
        for path, fields in attempts.items():
            answer = client.post(path, data={"csrf_token": csrf, **fields})
            assert answer.status_code == 403 and "only owners and admins" in answer.text, path
        assert client.get(f"/workspaces/{team.account_id}/audit").status_code == 403
    listed = keys.list_keys(live.resources.database, Actor.operator(), team.account_id)
    assert [(view.name, view.status) for view in listed] == [("Zapier connection", "active"), ("Untouchable", "active")]


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_every_form_needs_the_csrf_token(live: LiveServer, team: Team, make: Keys, role: str) -> None:
    key = make.workspace_key(name="Guarded")
    with live.client() as client:
        session_for(client, f"{role}@acme.example")
        page = client.get(panel(team))
        actions = post_forms(page.text)
        base = panel(team)
        expected = {f"{base}/keys", f"{base}/keys/{key.view.id}/rotate", f"{base}/keys/{key.view.id}/revoke",
                    f"{base}/clients", f"{base}/leak-response", "/logout"}  # fmt: skip
        assert set(actions) == expected
        for form in forms(page.text):
            if form["method"] == "post":
                assert form["inputs"]["csrf_token"]  # type: ignore[index]
        for action in actions:
            for token in (None, "forged"):
                data = {"name": "Forged", "grace_seconds": "0", "base_url": N8N_BASE, "leak_response": "notify"}
                if token is not None:
                    data["csrf_token"] = token
                answer = client.post(action, data=data)
                assert answer.status_code == 403, action
        assert client.get("/api/session").status_code == 200  # /logout refused too: still signed in
    assert [view.status for view in keys.list_keys(live.resources.database, Actor.operator(), team.account_id)] == [
        "active"
    ]


def test_other_workspaces_are_not_found_as_pages(live: LiveServer, team: Team, make: Keys) -> None:
    theirs = make.workspace_key(account_id=team.other_account_id)
    with live.client() as client:
        csrf = session_for(client, "admin@acme.example")
        for path in (panel(team, team.other_account_id), f"/workspaces/{team.other_account_id}/audit",
                     panel(team, "acc_doesnotexist00000")):  # fmt: skip
            answer = client.get(path)
            assert answer.status_code == 404 and "Not found" in answer.text, path
        for path in (f"{panel(team)}/keys/{theirs.view.id}/revoke", f"{panel(team)}/keys/{theirs.view.id}/rotate",
                     f"{panel(team, team.other_account_id)}/keys/{theirs.view.id}/revoke"):  # fmt: skip
            answer = client.post(path, data={"csrf_token": csrf, "grace_seconds": "0"})
            assert answer.status_code == 404, path
    assert [view.status for view in keys.list_keys(live.resources.database, team.outsider, team.other_account_id)] == [
        "active"
    ]


def test_a_change_flashes_once_and_secrets_are_shown_only_by_the_post(live: LiveServer, team: Team) -> None:
    with live.client() as client:
        csrf = session_for(client, "owner@acme.example")
        made = client.post(f"{panel(team)}/keys", data={"csrf_token": csrf, "name": "Once"})
        assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
        [secret] = re.findall(r"nim_key_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}", made.text)
        assert "it will not be shown again" in made.text
        assert secret not in made.headers.get("set-cookie", "")  # the session never carries it
        key_id = secret.split("_")[2]
        page = client.get(panel(team))
        assert secret not in page.text and key_id in page.text and "<dialog" not in page.text
        revoked = client.post(f"{panel(team)}/keys/{key_id}/revoke", data={"csrf_token": csrf})
        assert revoked.status_code == 303 and revoked.headers["location"] == f"{panel(team)}#keys"
        assert "“Once” was revoked" in client.get(panel(team)).text
        assert "“Once” was revoked" not in client.get(panel(team)).text
        again = client.post(f"{panel(team)}/keys/{key_id}/revoke", data={"csrf_token": csrf})
        assert again.status_code == 303 and "already revoked" in client.get(panel(team)).text
        bad_grace = client.post(f"{panel(team)}/keys/{key_id}/rotate", data={"csrf_token": csrf, "grace_seconds": "x"})
        assert bad_grace.status_code == 303 and "Choose how long" in client.get(panel(team)).text


def test_pages_carry_the_security_headers_and_no_inline_script(live: LiveServer, team: Team) -> None:
    with live.client() as client:
        session_for(client, "admin@acme.example")
        for path in (panel(team), f"/workspaces/{team.account_id}/audit"):
            page = client.get(path)
            assert page.status_code == 200
            policy = page.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
            scripts = re.findall(r"<script[^>]*>", page.text)
            assert scripts == ['<script src="/static/app.js" defer>'], scripts
            assert not re.search(r"\son[a-z]+=", page.text), "no inline event handlers"
            assert not re.search(r"(src|href)=\"(https?:)?//", page.text), "no third-party resources"
        script = client.get("/static/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]


def test_the_n8n_form_takes_a_base_url_or_the_callback(live: LiveServer, team: Team) -> None:
    with live.client() as client:
        csrf = session_for(client, "admin@acme.example")
        for given in (N8N_BASE, N8N_BASE + "/", N8N_BASE + "/rest/oauth2-credential/callback"):
            answer = client.post(f"{panel(team)}/clients", data={"csrf_token": csrf, "base_url": given})
            assert answer.status_code == 200 and "Client Secret" in answer.text
            assert f"{N8N_BASE}/rest/oauth2-credential/callback" in answer.text
        refused = client.post(f"{panel(team)}/clients", data={"csrf_token": csrf, "base_url": "http://n8n.example.com"})
        assert refused.status_code == 422 and "must use https" in refused.text
        assert 'value="http://n8n.example.com"' in refused.text


def test_the_switcher_goes_to_a_workspaces_panel(live: LiveServer, team: Team) -> None:
    with live.client() as client:
        session_for(client, "admin@acme.example")
        assert client.get("/workspaces", params={"account_id": team.account_id}).headers["location"] == panel(team)
        for bogus in ("../../etc", "", "x" * 100):
            assert client.get("/workspaces", params={"account_id": bogus}).headers["location"] == "/"
