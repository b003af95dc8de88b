"""The admin JSON API's contract paths through a real server: members (PATCH, DELETE), activity for every role, hooks,
n8n clients, an organization's credentials and the session's password change. Each with its exact shape, who may act
(viewer, member, admin, owner, outsider), the CSRF header on unsafe methods, and 404 for another workspace's ids."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from tests.browser_forms import sign_in
from tests.connect import register
from tests.live import LiveServer
from tests.makers import Keys
from tests.support import PASSWORD, Team
from tests.web.admin_session import AdminSession, signed_in
from token_broker.services import keys, verification, webhook_subscriptions
from token_broker.services.keys import KeyRequest

ROLES = ["owner", "admin", "member", "viewer"]
MANAGERS = ["owner", "admin"]
MEMBER_FIELDS = {"user_id", "email", "role", "created_at"}
CLIENT_FIELDS = {"client_id", "platform", "workspace", "redirect_uris", "status", "created_at"}


def error_of(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]


@pytest.mark.parametrize("role", ROLES)
def test_members_are_listed_with_the_contract_fields(live: LiveServer, team: Team, role: str) -> None:
    with signed_in(live, role) as session:
        listed = session.get(f"/api/workspaces/{team.account_id}/members")
        assert listed.status_code == 200
        people = listed.json()["data"]
        assert all(set(person) == MEMBER_FIELDS for person in people)
        assert {p["user_id"]: p["role"] for p in people}[team.viewer.label] == "viewer"
        assert all(p["created_at"].endswith("Z") for p in people)
        assert error_of(session.get(f"/api/workspaces/{team.other_account_id}/members")) == (404, "not_found")


@pytest.mark.parametrize("role", MANAGERS)
def test_managers_patch_a_role_and_delete_a_member(live: LiveServer, team: Team, role: str) -> None:
    base = f"/api/workspaces/{team.account_id}/members"
    with signed_in(live, role) as manager, signed_in(live, "viewer") as viewer:
        promoted = manager.patch(f"{base}/{team.member.label}", {"role": "admin"})
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["role"] == "admin" and promoted.json()["user_id"] == team.member.label
        assert set(promoted.json()) == MEMBER_FIELDS
        assert viewer.get("/api/session").status_code == 200
        removed = manager.delete(f"{base}/{team.viewer.label}")
        assert removed.status_code == 204 and removed.content == b""
        assert viewer.get("/api/session").status_code == 401, "a removed member's sessions end"
        listed = manager.get(base).json()["data"]
        assert team.viewer.label not in {p["user_id"] for p in listed}


def test_member_changes_are_refused_clearly(live: LiveServer, team: Team) -> None:
    base = f"/api/workspaces/{team.account_id}/members"
    member = team.member.label
    for role in ("member", "viewer"):
        with signed_in(live, role) as plain:
            assert error_of(plain.patch(f"{base}/{team.viewer.label}", {"role": "member"})) == (403, "forbidden")
            assert error_of(plain.delete(f"{base}/{team.viewer.label}")) == (403, "forbidden")
    with signed_in(live, "outsider") as outsider:
        assert error_of(outsider.patch(f"{base}/{member}", {"role": "viewer"})) == (404, "not_found")
        assert error_of(outsider.delete(f"{base}/{member}")) == (404, "not_found")
    with signed_in(live, "admin") as admin:
        unknown = admin.patch(f"{base}/{member}", {"role": "emperor"})
        assert error_of(unknown) == (422, "invalid_request") and "role" in unknown.json()["message"]
        assert error_of(admin.patch(f"{base}/{member}", {"role": "viewer"}, csrf=False)) == (403, "csrf_failed")
        assert error_of(admin.delete(f"{base}/{member}", csrf=False)) == (403, "csrf_failed")
        # An id of another workspace's user, and a path through another workspace: not found.
        assert error_of(admin.delete(f"{base}/{team.outsider.label}")) == (404, "not_found")
        other = f"/api/workspaces/{team.other_account_id}/members/{team.outsider.label}"
        assert error_of(admin.patch(other, {"role": "viewer"})) == (404, "not_found")
        assert error_of(admin.delete(other)) == (404, "not_found")
        assert {p["user_id"]: p["role"] for p in admin.get(base).json()["data"]}[member] == "member"
    with signed_in(live, "owner") as owner:
        assert error_of(owner.delete(f"{base}/{team.owner.label}")) == (409, "conflict")
        assert error_of(owner.patch(f"{base}/{team.owner.label}", {"role": "admin"})) == (409, "conflict")


def test_a_demoted_member_loses_their_sessions(live: LiveServer, team: Team) -> None:
    base = f"/api/workspaces/{team.account_id}/members"
    with signed_in(live, "owner") as owner, signed_in(live, "admin") as admin:
        assert owner.patch(f"{base}/{team.admin.label}", {"role": "viewer"}).status_code == 200
        assert admin.get("/api/session").status_code == 401


def test_activity_is_open_to_every_role(live: LiveServer, team: Team, make: Keys) -> None:
    key = make.workspace_key(name="Importer")
    links = f"{live.base_url}/v1/workspaces/{team.account_id}/links"
    made = httpx.post(
        links, headers={"Authorization": f"Bearer {key.plaintext}"}, json={"destination": "https://a.example/"}
    )
    assert made.status_code == 201
    path = f"/api/workspaces/{team.account_id}/activity"
    for role in ROLES:
        with signed_in(live, role) as session:
            page = session.get(path, credential=key.view.id)
            assert page.status_code == 200, (role, page.text)
            body = page.json()
            assert set(body) == {"data", "has_more"} and body["has_more"] is False
            [item] = body["data"]
            assert set(item) == {"id", "type", "link_id", "credential", "address", "created_at"}
            assert item["type"] == "link.created" and item["link_id"] == made.json()["id"]
            assert item["credential"] == {
                "id": key.view.id,
                "name": "Importer",
                "kind": "workspace_key",
                "platform": None,
            }
    theirs = make.workspace_key(team.other_account_id, name="Theirs")
    with signed_in(live, "admin") as admin:
        assert error_of(admin.get(path, credential=theirs.view.id)) == (404, "not_found"), "another workspace's key"
    with signed_in(live, "outsider") as outsider:
        assert error_of(outsider.get(path)) == (404, "not_found")


def make_hook(live: LiveServer, team: Team, account_id: str, target: str) -> tuple[str, str, str]:
    """A hook owned by a new workspace key of account_id: (the key's id, the hook's id, its signing secret)."""
    actor = team.admin if account_id == team.account_id else team.outsider
    database, hasher = live.resources.database, live.resources.hasher
    request = KeyRequest(name="hooks", scopes=["links:read", "hooks:write"])
    issued = keys.create_key(database, hasher, actor, account_id, request)
    assert issued.plaintext is not None
    credential = verification.verify(database, hasher, issued.plaintext)
    settings = replace(live.resources.settings, webhook_allow_hosts=("127.0.0.1",))
    hook = webhook_subscriptions.create_hook(database, credential, "link.created", target, settings)
    return issued.view.id, hook.view.id, hook.secret


def test_hooks_are_listed_to_every_role_without_secret_or_full_target(live: LiveServer, team: Team) -> None:
    key_id, hook_id, hook_secret = make_hook(
        live, team, team.account_id, "http://127.0.0.1:9/hooks/secret-token-in-path"
    )
    make_hook(live, team, team.other_account_id, "http://127.0.0.1:9/theirs")
    path = f"/api/workspaces/{team.account_id}/hooks"
    for role in ROLES:
        with signed_in(live, role) as session:
            listed = session.get(path)
            assert listed.status_code == 200 and set(listed.json()) == {"data"}
            [hook] = listed.json()["data"]
            assert hook["id"] == hook_id and hook["event"] == "link.created" and hook["status"] == "active"
            assert hook["target_host"] == "127.0.0.1"
            assert hook["owner"] == {"credential_id": key_id, "connection_id": None}
            assert hook["created_at"].endswith("Z")
            assert set(hook) == {"id", "event", "target_host", "status", "owner", "created_at"}
            assert "secret-token-in-path" not in listed.text and hook_secret not in listed.text
    with signed_in(live, "outsider") as outsider:
        assert error_of(outsider.get(path)) == (404, "not_found")


@pytest.mark.parametrize("role", ROLES)
def test_clients_are_listed_with_the_contract_fields(live: LiveServer, team: Team, role: str) -> None:
    ours = register(live.resources.database, "n8n", team.account_id, team.admin)
    register(live.resources.database, "n8n", team.other_account_id, team.outsider)
    with signed_in(live, role) as session:
        listed = session.get(f"/api/workspaces/{team.account_id}/clients")
        assert listed.status_code == 200
        [client] = listed.json()["data"]
        assert set(client) == CLIENT_FIELDS
        assert client["client_id"] == ours.client_id and client["workspace"] == team.account_id
        assert client["platform"] == "n8n" and client["status"] == "active"


def client_path(account_id: str, client_id: str, action: str) -> str:
    return f"/api/workspaces/{account_id}/clients/{client_id}/{action}"


@pytest.mark.parametrize("role", MANAGERS)
def test_managers_rotate_and_revoke_a_client(live: LiveServer, team: Team, role: str) -> None:
    ours = register(live.resources.database, "n8n", team.account_id, team.admin)
    with signed_in(live, role) as manager:
        rotated = manager.post(client_path(team.account_id, ours.client_id, "rotate"), {"grace_seconds": 60})
        assert rotated.status_code == 200, rotated.text
        assert set(rotated.json()) == {"client_id", "client_secret", "grace_until"}
        assert rotated.json()["client_secret"] and rotated.json()["grace_until"].endswith("Z")
        revoked = manager.post(client_path(team.account_id, ours.client_id, "revoke"))
        assert revoked.status_code == 200
        assert revoked.json() == {"client_id": ours.client_id, "status": "revoked", "connections_ended": 0}


def test_client_changes_are_refused_clearly(live: LiveServer, team: Team) -> None:
    ours = register(live.resources.database, "n8n", team.account_id, team.admin)
    theirs = register(live.resources.database, "n8n", team.other_account_id, team.outsider)
    for role in ("member", "viewer"):
        with signed_in(live, role) as plain:
            for action in ("rotate", "revoke"):
                refused = plain.post(client_path(team.account_id, ours.client_id, action))
                assert error_of(refused) == (403, "forbidden")
    with signed_in(live, "outsider") as outsider:
        refused = outsider.post(client_path(team.account_id, ours.client_id, "revoke"))
        assert error_of(refused) == (404, "not_found")
    with signed_in(live, "admin") as admin:
        for action in ("rotate", "revoke"):
            unsent = admin.post(client_path(team.account_id, ours.client_id, action), csrf=False)
            assert error_of(unsent) == (403, "csrf_failed")
            other = admin.post(client_path(team.account_id, theirs.client_id, action))
            assert error_of(other) == (404, "not_found")
            through_other = admin.post(client_path(team.other_account_id, theirs.client_id, action))
            assert error_of(through_other) == (404, "not_found")
        [client] = admin.get(f"/api/workspaces/{team.account_id}/clients").json()["data"]
        assert client["status"] == "active"
    with signed_in(live, "outsider") as outsider:
        [client] = outsider.get(f"/api/workspaces/{team.other_account_id}/clients").json()["data"]
        assert client["status"] == "active"


def make_organization(owner: AdminSession, account_id: str) -> str:
    made = owner.post("/api/organizations", {"name": "Acme Holdings", "account_ids": [account_id]})
    assert made.status_code == 201, made.text
    org_id: str = made.json()["id"]
    named = owner.post(f"/api/organizations/{org_id}/roles", {"user": "admin@acme.example", "role": "admin"})
    assert named.status_code == 200
    return org_id


def test_an_organizations_credentials_with_their_account_id_and_filters(
    live: LiveServer, team: Team, make: Keys
) -> None:
    lasting = make.workspace_key(name="Lasting")
    expiring = make.workspace_key(name="Expiring", expires_in=3600, allowed_ips=["203.0.113.0/24"])
    make.workspace_key(team.other_account_id, name="Not theirs")
    with signed_in(live, "owner") as owner:
        org_id = make_organization(owner, team.account_id)
    path = f"/api/orgs/{org_id}/credentials"
    for role in MANAGERS:
        with signed_in(live, role) as session:
            listed = session.get(path)
            assert listed.status_code == 200, listed.text
            found = {item["id"]: item["account_id"] for item in listed.json()["data"]}
            assert found == {lasting.view.id: team.account_id, expiring.view.id: team.account_id}
            assert [item["id"] for item in session.get(path, no_expiry="1").json()["data"]] == [lasting.view.id]
            no_ips = session.get(path, no_ip_allow_list="1").json()["data"]
            assert [item["id"] for item in no_ips] == [lasting.view.id]
            assert len(session.get(path, usage="never_used").json()["data"]) == 2
            assert session.get(path, platform="zapier").json()["data"] == []
            assert error_of(session.get(path, usage="sometimes")) == (422, "invalid_request")
            assert session.get(f"/api/organizations/{org_id}/governance").status_code == 200, "the first path stays"
    for role in ("member", "viewer", "outsider"):
        with signed_in(live, role) as stranger:
            assert error_of(stranger.get(path)) == (404, "not_found")
    with signed_in(live, "owner") as owner:
        assert error_of(owner.get("/api/orgs/org_nothing/credentials")) == (404, "not_found")


def test_the_session_password_change_answers_204_and_ends_other_sessions(live: LiveServer, team: Team) -> None:
    path = "/api/session/password"
    change = {"current_password": PASSWORD, "new_password": "a brand new password"}
    with signed_in(live, "member") as laptop, signed_in(live, "member") as phone:
        assert error_of(laptop.post(path, change, csrf=False)) == (403, "csrf_failed")
        wrong = laptop.post(path, {"current_password": "not it at all", "new_password": "a brand new password"})
        assert error_of(wrong) == (403, "wrong_password")
        assert phone.get("/api/session").status_code == 200, "refused attempts change nothing"
        done = laptop.post(path, change)
        assert done.status_code == 204 and done.content == b""
        assert laptop.get("/api/session").status_code == 200, "the session that changed it stays"
        assert phone.get("/api/session").status_code == 401, "every other session ended"
    with live.client() as client:
        assert sign_in(client, "member@acme.example", "a brand new password").status_code == 303
    with live.client() as anonymous:
        refused = anonymous.post(path, json=change)
        assert refused.status_code == 401
