"""The hooks routes through a real server: scope, validation, ownership, the secret shown once, and the lifespan's
worker delivering to a real receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from tests.live import LiveServer, live_server
from tests.makers import Keys
from tests.support import Team
from tests.webhooks.receivers import receiver
from token_broker.config import Settings, SettingsError
from token_broker.net import signing
from token_broker.store.models import AuditEvent


def bearer(key: str | None) -> dict[str, str]:
    assert key is not None
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def server(database_url: str, team: Team) -> Iterator[LiveServer]:
    with live_server(database_url, webhook_allow_hosts=("127.0.0.1",)) as running:
        yield running


def test_a_hook_from_creation_to_deletion(server: LiveServer, make: Keys, team: Team) -> None:
    issued = make.workspace_key(rate_limits=["1000/minute"])
    auth = bearer(issued.plaintext)
    base = f"/v1/workspaces/{team.account_id}/hooks"
    with server.client() as client:
        created = client.post(base, headers=auth, json={"event": "link.created", "target_url": "http://127.0.0.1:9/in"})
        assert created.status_code == 201, created.text
        assert created.headers["cache-control"] == "no-store"
        hook = created.json()
        assert hook["id"].startswith("hook_") and hook["secret"].startswith("whsec_")
        assert {key: hook[key] for key in ("event", "target_url", "status", "status_reason")} == {
            "event": "link.created",
            "target_url": "http://127.0.0.1:9/in",
            "status": "active",
            "status_reason": None,
        }
        listed = client.get(base, headers=auth)
        assert listed.status_code == 200
        assert listed.json() == {"data": [{k: v for k, v in hook.items() if k != "secret"}], "has_more": False}
        assert hook["secret"] not in listed.text
        one = client.get(f"{base}/{hook['id']}", headers=auth)
        assert one.status_code == 200 and one.json() == listed.json()["data"][0]
        assert client.delete(f"{base}/{hook['id']}", headers=auth).status_code == 204
        assert client.get(base, headers=auth).json()["data"] == []
        assert client.get(f"{base}/{hook['id']}", headers=auth).status_code == 404
        again = client.delete(f"{base}/{hook['id']}", headers=auth)
        assert again.status_code == 404 and again.json()["error"] == "not_found"
    with make.database.read() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action.like("hook.%")).order_by(AuditEvent.id))
        audit = [(row.action, row.outcome, row.actor, row.target_id, row.details) for row in rows]
    actor = f"credential:{issued.view.id}"
    assert audit == [
        ("hook.created", "ok", actor, hook["id"], {"event": "link.created", "target_host": "127.0.0.1"}),
        ("hook.deleted", "ok", actor, hook["id"], {}),
        ("hook.deleted", "refused", actor, hook["id"], {}),
    ]
    assert all(hook["secret"] not in str(entry) for entry in audit)


def test_hooks_need_the_hooks_write_scope(server: LiveServer, make: Keys, team: Team) -> None:
    auth = bearer(make.workspace_key(scopes=["links:read", "links:write"]).plaintext)
    base = f"/v1/workspaces/{team.account_id}/hooks"
    body = {"event": "link.created", "target_url": "http://127.0.0.1:9/in"}
    with server.client() as client:
        for response in (
            client.get(base, headers=auth),
            client.get(f"{base}/hook_0000000000000000", headers=auth),
            client.post(base, headers=auth, json=body),
            client.delete(f"{base}/hook_0000000000000000", headers=auth),
        ):
            assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target_url": "https://93.184.215.14/"}, "event"),
        ({"event": "link.created"}, "target_url"),
        ({"event": "link.created", "target_url": "https://93.184.215.14/", "url": "x"}, "url"),
        ({"event": "link.exploded", "target_url": "https://93.184.215.14/"}, "event"),
        ({"event": ["link.created"], "target_url": "https://93.184.215.14/"}, "event"),
        ({"event": "link.created", "target_url": "http://93.184.215.14/"}, "target_url"),
        ({"event": "link.created", "target_url": "https://10.0.0.1/"}, "target_url"),
        ({"event": "link.created", "target_url": "https://2130706433/"}, "target_url"),
        ({"event": "link.created", "target_url": "https://unknown-name.partner.test/"}, "target_url"),
        ({"event": "link.created", "target_url": 42}, "target_url"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(
    server: LiveServer, make: Keys, team: Team, body: dict[str, object], field: str
) -> None:
    auth = bearer(make.workspace_key().plaintext)
    with server.client() as client:
        response = client.post(f"/v1/workspaces/{team.account_id}/hooks", headers=auth, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request" and field in response.json()["message"]


def test_a_hook_belongs_to_the_key_that_made_it(server: LiveServer, make: Keys, team: Team) -> None:
    ours, theirs = bearer(make.workspace_key().plaintext), bearer(make.workspace_key().plaintext)
    outsider = bearer(make.workspace_key(account_id=team.other_account_id).plaintext)
    base = f"/v1/workspaces/{team.account_id}/hooks"
    with server.client() as client:
        hook = client.post(
            base, headers=ours, json={"event": "link.updated", "target_url": "http://127.0.0.1:9/in"}
        ).json()
        assert client.get(base, headers=theirs).json()["data"] == []
        # Another owner in the same workspace cannot even learn that the hook exists: the same 404 as a missing one.
        theirs_view, missing = (
            client.get(f"{base}/{hook['id']}", headers=theirs),
            client.get(f"{base}/hook_0000000000000000", headers=theirs),
        )
        assert theirs_view.status_code == missing.status_code == 404
        assert theirs_view.json()["error"] == missing.json()["error"] == "not_found"
        assert client.get(f"{base}/{hook['id']}", headers=outsider).status_code == 403
        other_base = f"/v1/workspaces/{team.other_account_id}/hooks"
        assert client.get(f"{other_base}/{hook['id']}", headers=outsider).status_code == 404
        assert client.delete(f"{base}/{hook['id']}", headers=theirs).status_code == 404
        assert client.delete(f"{base}/{hook['id']}", headers=outsider).status_code == 403  # another workspace's path
        other_base = f"/v1/workspaces/{team.other_account_id}/hooks"
        assert client.delete(f"{other_base}/{hook['id']}", headers=outsider).status_code == 404
        assert client.get(base, headers=ours).json()["data"][0]["id"] == hook["id"]


def test_the_servers_worker_delivers_what_the_api_subscribed(server: LiveServer, make: Keys, team: Team) -> None:
    auth = bearer(make.workspace_key(rate_limits=["1000/minute"]).plaintext)
    with receiver() as target, server.client() as client:
        hook = client.post(
            f"/v1/workspaces/{team.account_id}/hooks",
            headers=auth,
            json={"event": "link.created", "target_url": target.url},
        ).json()
        link = client.post(
            f"/v1/workspaces/{team.account_id}/links", headers=auth, json={"destination": "https://example.com/x"}
        ).json()
        [request] = target.wait_for(1)
    event = signing.verify(hook["secret"], request.headers, request.body)
    assert event["type"] == "link.created" and event["data"]["link"]["id"] == link["id"]


def test_the_worker_setting() -> None:
    assert Settings.from_env({}).webhook_worker is True
    assert Settings.from_env({"TOKEN_BROKER_WEBHOOK_WORKER": "off"}).webhook_worker is False
    assert Settings.from_env({"TOKEN_BROKER_WEBHOOK_WORKER": "1"}).webhook_worker is True
    with pytest.raises(SettingsError, match="TOKEN_BROKER_WEBHOOK_WORKER"):
        Settings.from_env({"TOKEN_BROKER_WEBHOOK_WORKER": "sometimes"})


def test_malformed_bodies_never_500(server: LiveServer, make: Keys, team: Team) -> None:
    auth = bearer(make.workspace_key(rate_limits=["1000/minute"]).plaintext)
    base = f"/v1/workspaces/{team.account_id}/hooks"
    with server.client() as client:
        for content in (b"", b"[]", b"null", b"{", b'{"event": "link.created", "target_url": "https://\\u0000/"}'):
            response = client.post(base, headers={**auth, "Content-Type": "application/json"}, content=content)
            assert response.status_code == 422, (content, response.text)
        weird = client.delete(f"{base}/%00%ff", headers=auth)
        assert weird.status_code == 404
        assert client.get(f"{base}/%00%ff", headers=auth).status_code == 404
