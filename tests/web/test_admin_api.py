"""The admin JSON API through a real server, on SQLite and PostgreSQL: every route, every role, CSRF and isolation."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from tests.connect import Platform, connect, exchange, get_code, register
from tests.live import LiveServer
from tests.makers import Keys
from tests.support import Team
from tests.web.admin_session import signed_in
from token_broker.services import connections
from token_broker.services.actors import Actor
from token_broker.store.models import AuditEvent

MANAGERS = ["owner", "admin"]
LOOKERS = ["member", "viewer"]
N8N_CALLBACK = "https://n8n.example.com/rest/oauth2-credential/callback"


def base(team: Team, account_id: str | None = None) -> str:
    return f"/api/workspaces/{account_id or team.account_id}"


def me(live: LiveServer, key: str) -> httpx.Response:
    return httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def error_of(answer: httpx.Response) -> str:
    body = answer.json()
    assert set(body) >= {"error", "message"} and body["message"], body
    error: str = body["error"]
    return error


def every_route(team: Team, key_id: str, connection_id: str) -> list[tuple[str, str, dict[str, object] | None]]:
    prefix = base(team)
    return [
        ("GET", f"{prefix}/keys", None),
        ("POST", f"{prefix}/keys", {"name": "x"}),
        ("POST", f"{prefix}/keys/{key_id}/rotate", {}),
        ("POST", f"{prefix}/keys/{key_id}/revoke", None),
        ("GET", f"{prefix}/connections", None),
        ("POST", f"{prefix}/connections/{connection_id}/disconnect", None),
        ("POST", f"{prefix}/clients", {"platform": "n8n", "redirect_uri": N8N_CALLBACK}),
        ("GET", f"{prefix}/audit", None),
    ]


def test_not_signed_in_is_401_on_every_route(live: LiveServer, team: Team, make: Keys) -> None:
    key = make.workspace_key()
    with live.client() as client:
        for method, path, body in every_route(team, key.view.id, "con_whatever"):
            answer = client.request(method, path, json=body)
            assert answer.status_code == 401, (method, path)
            assert error_of(answer) == "not_signed_in"
    assert me(live, key.plaintext or "").status_code == 200


def test_unsafe_methods_need_the_csrf_header(live: LiveServer, team: Team, make: Keys) -> None:
    key = make.workspace_key()
    with signed_in(live, "admin") as session:
        for method, path, body in every_route(team, key.view.id, "con_whatever"):
            if method == "GET":
                continue
            missing = session.post(path, body, csrf=False)
            assert missing.status_code == 403 and error_of(missing) == "csrf_failed", path
            forged = session.client.post(path, json=body, headers={"X-CSRF-Token": "forged" * 8})
            assert forged.status_code == 403 and error_of(forged) == "csrf_failed", path
            in_a_form = session.client.post(path, data={"csrf_token": session.csrf_token})
            assert in_a_form.status_code == 403 and error_of(in_a_form) == "csrf_failed", path
        listed = session.get(f"{base(team)}/keys").json()["data"]
    assert [item["status"] for item in listed] == ["active"]
    assert me(live, key.plaintext or "").status_code == 200


@pytest.mark.parametrize("role", MANAGERS + LOOKERS)
def test_every_role_lists_both_kinds_and_connections(live: LiveServer, team: Team, make: Keys, role: str) -> None:
    key = make.workspace_key(name="Reporting", scopes=["links:read"])
    platform = register(live.resources.database, "zapier")
    tokens = connect(live.base_url, platform, team.account_id)
    with signed_in(live, role) as session:
        keys = session.get(f"{base(team)}/keys")
        connections = session.get(f"{base(team)}/connections")
    assert keys.status_code == 200 and keys.headers["cache-control"] == "no-store"
    listed = keys.json()["data"]
    assert [(item["kind"], item["platform"]) for item in listed] == [
        ("partner_install_token", "zapier"),
        ("workspace_key", None),
    ]
    fields = {"id", "name", "kind", "platform", "status", "created_at", "created_by", "last_used_at", "expires_at",
              "scopes", "allowed_ips", "hint"}  # fmt: skip
    assert all(fields <= set(item) for item in listed)
    assert listed[1]["id"] == key.view.id and listed[1]["scopes"] == ["links:read"]
    assert "key" not in listed[1] and key.plaintext not in keys.text and tokens["access_token"] not in keys.text
    assert connections.status_code == 200
    [connection] = connections.json()["data"]
    assert connection["platform"] == "zapier" and connection["status"] == "active"
    assert connection["client_id"] == platform.client_id and connection["created_by"] == team.admin.label


@pytest.mark.parametrize("role", MANAGERS)
def test_owners_and_admins_create_rotate_and_revoke(live: LiveServer, team: Team, role: str) -> None:
    with signed_in(live, role) as session:
        created = session.post(
            f"{base(team)}/keys",
            {"name": "Nightly", "scopes": ["links:read"], "expires_in": 3600, "allowed_ips": ["127.0.0.1"],
             "rate_limits": ["100/minute"]},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        body = created.json()
        first = body["key"]
        assert (
            body["name"] == "Nightly" and body["scopes"] == ["links:read"] and body["allowed_ips"] == ["127.0.0.1/32"]
        )
        assert body["rate_limits"] == ["100/minute"] and body["expires_at"] is not None
        assert me(live, first).json()["credential"]["id"] == body["id"]

        rotated = session.post(f"{base(team)}/keys/{body['id']}/rotate", {"grace_seconds": 600})
        assert rotated.status_code == 200, rotated.text
        second = rotated.json()["key"]
        assert second != first and rotated.json()["id"] == body["id"] and rotated.json()["grace_until"] is not None
        assert me(live, first).status_code == 200 and me(live, second).status_code == 200

        revoked = session.post(f"{base(team)}/keys/{body['id']}/revoke")
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        for secret in (first, second):
            refused = me(live, secret)
            assert refused.status_code == 401 and error_of(refused) == "invalid_api_key"

        again = session.post(f"{base(team)}/keys/{body['id']}/revoke")
        assert again.status_code == 409 and error_of(again) == "conflict"
        listed = session.get(f"{base(team)}/keys").json()["data"]
        assert [(item["id"], item["status"]) for item in listed] == [(body["id"], "revoked")]


@pytest.mark.parametrize("role", MANAGERS)
def test_rotation_without_grace_ends_the_old_secret_at_once(live: LiveServer, team: Team, make: Keys,
                                                            role: str) -> None:  # fmt: skip
    key = make.workspace_key()
    assert me(live, key.plaintext or "").status_code == 200  # cached by the guard now
    with signed_in(live, role) as session:
        rotated = session.post(f"{base(team)}/keys/{key.view.id}/rotate", {"grace_seconds": 0})
    assert rotated.status_code == 200 and rotated.json()["grace_until"] is None
    assert me(live, key.plaintext or "").status_code == 401
    assert me(live, rotated.json()["key"]).status_code == 200


@pytest.mark.parametrize("role", MANAGERS)
def test_owners_and_admins_disconnect_and_register_n8n(live: LiveServer, team: Team, role: str) -> None:
    platform = register(live.resources.database, "make")
    tokens = connect(live.base_url, platform, team.account_id)
    assert me(live, tokens["access_token"]).status_code == 200
    with signed_in(live, role) as session:
        [connection] = session.get(f"{base(team)}/connections").json()["data"]
        answer = session.post(f"{base(team)}/connections/{connection['id']}/disconnect")
        assert answer.status_code == 200, answer.text
        assert (
            answer.json()["status"] == "disconnected" and answer.json()["disconnected_by"] == getattr(team, role).label
        )
        refused = me(live, tokens["access_token"])
        assert refused.status_code == 401 and error_of(refused) == "reconnect_required"
        again = session.post(f"{base(team)}/connections/{connection['id']}/disconnect")
        assert again.status_code == 409 and error_of(again) == "conflict"

        registered = session.post(f"{base(team)}/clients", {"platform": "n8n", "redirect_uri": N8N_CALLBACK})
        assert registered.status_code == 201, registered.text
        client = registered.json()
        assert client["client_id"].startswith("n8n_") and len(client["client_secret"]) >= 32
        assert client["redirect_uris"] == [N8N_CALLBACK]
        wrong = session.post(f"{base(team)}/clients", {"platform": "n8n", "redirect_uri": "http://n8n.example.com/x"})
        assert wrong.status_code == 422 and error_of(wrong) == "invalid_request"
        zapier = session.post(f"{base(team)}/clients", {"platform": "zapier", "redirect_uri": N8N_CALLBACK})
        assert zapier.status_code == 422 and error_of(zapier) == "invalid_request"
    n8n = Platform("n8n", client["client_id"], client["client_secret"], N8N_CALLBACK)
    assert connect(live.base_url, n8n, team.account_id)["account_id"] == team.account_id


@pytest.mark.parametrize("role", LOOKERS)
def test_members_and_viewers_may_not_act(live: LiveServer, team: Team, make: Keys, role: str) -> None:
    key = make.workspace_key()
    tokens = connect(live.base_url, register(live.resources.database, "zapier"), team.account_id)
    with signed_in(live, role) as session:
        [connection] = session.get(f"{base(team)}/connections").json()["data"]
        for method, path, body in every_route(team, key.view.id, connection["id"]):
            if path.endswith(("/keys", "/connections")) and method == "GET":
                continue
            answer = session.client.request(method, path, json=body, headers={"X-CSRF-Token": session.csrf_token})
            assert answer.status_code == 403 and error_of(answer) == "forbidden", (method, path, answer.text)
    assert me(live, key.plaintext or "").status_code == 200
    assert me(live, tokens["access_token"]).status_code == 200
    with live.resources.database.read() as store:
        refused = store.scalars(select(AuditEvent.action).where(AuditEvent.outcome == "refused")).all()
    assert sorted(refused) == ["client.created", "connection.disconnected", "credential.created",
                               "credential.revoked", "credential.rotated"]  # fmt: skip


@pytest.mark.parametrize("role", [*MANAGERS, "outsider"])
def test_other_workspaces_and_their_ids_are_not_found(live: LiveServer, team: Team, make: Keys, role: str) -> None:
    database = live.resources.database
    acme_key = make.workspace_key()
    globex_key = make.workspace_key(account_id=team.other_account_id)
    acme_tokens = connect(live.base_url, register(database, "zapier"), team.account_id)
    globex_n8n = register(database, "n8n", team.other_account_id, team.outsider)
    globex_code = get_code(live.base_url, globex_n8n, team.other_account_id, email="owner@globex.example")
    globex_tokens = exchange(live.base_url, globex_n8n, globex_code).json()
    [acme_connection] = connections.list_connections(database, Actor.operator(), team.account_id)
    [globex_connection] = connections.list_connections(database, Actor.operator(), team.other_account_id)
    if role == "outsider":  # Globex's owner, looking at Acme
        own_account, foreign_account = team.other_account_id, team.account_id
        foreign_key, foreign_connection = acme_key.view.id, acme_connection.id
    else:
        own_account, foreign_account = team.account_id, team.other_account_id
        foreign_key, foreign_connection = globex_key.view.id, globex_connection.id
    with signed_in(live, role) as session:
        for account_id in (foreign_account, "acc_doesnotexist00000"):
            for method, path, body in every_route(team, foreign_key, foreign_connection):
                path = path.replace(team.account_id, account_id)
                answer = session.client.request(method, path, json=body, headers={"X-CSRF-Token": session.csrf_token})
                assert answer.status_code == 404 and error_of(answer) == "not_found", (method, path, answer.text)
        # Another workspace's ids through one's own workspace's paths are not found either.
        prefix = base(team, own_account)
        for path in (f"{prefix}/keys/{foreign_key}/rotate", f"{prefix}/keys/{foreign_key}/revoke",
                     f"{prefix}/connections/{foreign_connection}/disconnect"):  # fmt: skip
            answer = session.post(path, {})
            assert answer.status_code == 404 and error_of(answer) == "not_found", path
    for secret in (
        acme_key.plaintext,
        globex_key.plaintext,
        acme_tokens["access_token"],
        globex_tokens["access_token"],
    ):
        assert me(live, secret or "").status_code == 200


@pytest.mark.parametrize("role", MANAGERS)
def test_the_audit_log_is_newest_first_filtered_and_paged(live: LiveServer, team: Team, role: str) -> None:
    with signed_in(live, role) as session:
        made = [session.post(f"{base(team)}/keys", {"name": f"key {n}"}).json()["id"] for n in range(3)]
        assert session.post(f"{base(team)}/keys/{made[0]}/revoke").status_code == 200
        assert session.post(f"{base(team)}/keys/{made[0]}/revoke").status_code == 409
        everything = session.get(f"{base(team)}/audit").json()
        ids = [event["id"] for event in everything["data"]]
        assert ids == sorted(ids, reverse=True) and everything["has_more"] is False
        assert [event["action"] for event in everything["data"][:5]] == [
            "credential.revoked", "credential.revoked", "credential.created", "credential.created",
            "credential.created",
        ]  # fmt: skip
        newest = everything["data"][0]
        assert newest["outcome"] == "refused" and newest["reason"] == "conflict" and newest["target_id"] == made[0]
        assert newest["actor"] == getattr(team, role).label and newest["client_address"] == "127.0.0.1"

        first = session.get(f"{base(team)}/audit", limit=2).json()
        assert [event["id"] for event in first["data"]] == ids[:2] and first["has_more"] is True
        second = session.get(f"{base(team)}/audit", limit=2, before=ids[1]).json()
        assert [event["id"] for event in second["data"]] == ids[2:4]
        last = session.get(f"{base(team)}/audit", limit=100, before=ids[3]).json()
        assert [event["id"] for event in last["data"]] == ids[4:] and last["has_more"] is False

        created = session.get(f"{base(team)}/audit", action="credential.created").json()["data"]
        assert [event["target_id"] for event in created] == made[::-1]
        refused = session.get(f"{base(team)}/audit", outcome="refused").json()["data"]
        assert [event["reason"] for event in refused] == ["conflict"]
        by_operator = session.get(f"{base(team)}/audit", actor="operator").json()["data"]
        assert {event["action"] for event in by_operator} == {"workspace.created", "membership.created"}
        for bad in ({"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"before": "-1"}, {"outcome": "maybe"}):
            answer = session.get(f"{base(team)}/audit", **bad)
            assert answer.status_code == 422 and error_of(answer) == "invalid_request", bad


def test_bodies_are_checked(live: LiveServer, team: Team, make: Keys) -> None:
    key = make.workspace_key()
    with signed_in(live, "admin") as session:
        prefix = base(team)
        cases = [
            (f"{prefix}/keys", b"{not json"),
            (f"{prefix}/keys", b"[1, 2]"),
            (f"{prefix}/keys", b'{"name": "x", "colour": "red"}'),
            (f"{prefix}/keys", b'{"name": "x", "scopes": "links:read"}'),
            (f"{prefix}/keys", b'{"name": "x", "scopes": ["links:fly"]}'),
            (f"{prefix}/keys", b'{"name": ""}'),
            (f"{prefix}/keys", b'{"name": "x", "allowed_ips": ["10.0.0.1/8"]}'),
            (f"{prefix}/keys", b'{"name": "x", "rate_limits": ["often"]}'),
            (f"{prefix}/keys", b'{"name": "x", "expires_in": "soon"}'),
            (f"{prefix}/keys/{key.view.id}/rotate", b'{"grace_seconds": 999999999}'),
            (f"{prefix}/keys/{key.view.id}/rotate", b'{"grace": 5}'),
            (f"{prefix}/clients", b'{"platform": 5, "redirect_uri": null}'),
        ]
        for path, raw in cases:
            headers = {"X-CSRF-Token": session.csrf_token, "Content-Type": "application/json"}
            answer = session.client.post(path, content=raw, headers=headers)
            assert answer.status_code == 422 and error_of(answer) == "invalid_request", (path, raw, answer.text)
        huge = session.client.post(
            f"{prefix}/keys", content=b" " * 70_000, headers={"X-CSRF-Token": session.csrf_token}
        )
        assert huge.status_code == 413
        assert [item["name"] for item in session.get(f"{prefix}/keys").json()["data"]] == ["test key"]
    assert me(live, key.plaintext or "").status_code == 200
