"""Organizations played by their attackers through a real server, while their owner works: naming people cannot
probe which emails have accounts; another organization's admin, a workspace member and a stranger reach nothing."""

from __future__ import annotations

from sqlalchemy import select

from tests.live import LiveServer
from tests.support import Team
from tests.web.admin_session import signed_in
from token_broker.store.models import AuditEvent


def test_naming_someone_outside_the_organization_answers_alike_with_or_without_an_account(
    live: LiveServer, team: Team
) -> None:
    with signed_in(live, "owner") as owner:
        org = owner.post("/api/organizations", {"name": "Acme Holdings", "account_ids": [team.account_id]}).json()
        roles = f"/api/organizations/{org['id']}/roles"
        has_account = owner.post(roles, {"user": "owner@globex.example", "role": "admin"})
        no_account = owner.post(roles, {"user": "nobody@globex.example", "role": "admin"})
        assert has_account.status_code == no_account.status_code == 404
        assert has_account.json()["error"] == no_account.json()["error"] == "not_found"
        assert has_account.json()["message"].replace("owner@", "X@") == no_account.json()["message"].replace(
            "nobody@", "X@"
        ), "the answer must not tell whether the email has an account"
        by_id = owner.post(roles, {"user": team.outsider.label, "role": "admin"})
        assert by_id.status_code == 404, "nor may a user id from elsewhere be named"
        named = owner.post(roles, {"user": "member@acme.example", "role": "admin"})
        assert named.status_code == 200, "someone in the organization's workspace can be named"
        people = {p["email"]: p["role"] for p in named.json()["people"]}
        assert people == {"owner@acme.example": "owner", "member@acme.example": "admin"}
        removed = owner.post(roles, {"user": "member@acme.example", "role": "none"})
        assert removed.status_code == 200, "and someone in its roles can be named again"
    with live.resources.database.read() as session:
        outcomes = list(
            session.scalars(
                select(AuditEvent.outcome)
                .where(AuditEvent.action == "organization.role_changed")
                .order_by(AuditEvent.id)
            )
        )
    assert outcomes == ["refused", "refused", "refused", "ok", "ok"]


def test_another_organizations_admin_reaches_nothing_of_this_one(live: LiveServer, team: Team) -> None:
    with signed_in(live, "owner") as owner:
        org = owner.post("/api/organizations", {"name": "Acme Holdings", "account_ids": [team.account_id]}).json()
    with signed_in(live, "outsider") as outsider:
        theirs = outsider.post("/api/organizations", {"name": "Globex", "account_ids": [team.other_account_id]}).json()
        base = f"/api/organizations/{org['id']}"
        assert outsider.get(base).status_code == 404
        assert outsider.get(f"{base}/governance").status_code == 404
        assert outsider.post(f"{base}/roles", {"user": "owner@globex.example", "role": "owner"}).status_code == 404
        assert outsider.post(f"{base}/workspaces", {"account_id": team.other_account_id}).status_code == 404
        # Their own organization cannot take in a workspace they do not own.
        grab = outsider.post(f"/api/organizations/{theirs['id']}/workspaces", {"account_id": team.account_id})
        assert grab.status_code == 404
        # The switcher cannot make another organization or workspace active.
        outsider.get("/organizations/switch", organization_id=org["id"])
        outsider.get(f"/workspaces/{team.account_id}/api-access")
        active = outsider.get("/api/session/active").json()
        assert active["organization_id"] != org["id"] and active["account_id"] != team.account_id
        assert outsider.get(f"/api/workspaces/{team.account_id}/activity").status_code == 404
    with signed_in(live, "owner") as owner:
        view = owner.get(f"/api/organizations/{org['id']}").json()
        assert view["workspaces"] == [{"account_id": team.account_id, "name": "Acme"}]
        assert [p["email"] for p in view["people"]] == ["owner@acme.example"]


def test_placing_a_workspace_at_an_organizations_creation_shows_in_the_workspaces_own_log(
    live: LiveServer, team: Team
) -> None:
    """Placing a workspace lets the organization's admins see its credentials: its own admins must be able to see
    that it happened, whether at the organization's creation or later."""
    with signed_in(live, "owner") as owner:
        org = owner.post("/api/organizations", {"name": "Acme Holdings", "account_ids": [team.account_id]}).json()
    with signed_in(live, "admin") as admin:
        log = admin.get(f"/api/workspaces/{team.account_id}/audit", action="organization.workspace_added")
    assert log.status_code == 200
    [row] = log.json()["data"]
    assert row["outcome"] == "ok" and row["target_id"] == org["id"] and row["actor"] == team.owner.label
    assert row["details"] == {"organization": org["id"], "account_id": team.account_id}


def test_nobody_raises_their_own_role(live: LiveServer, team: Team) -> None:
    members = f"/api/workspaces/{team.account_id}/members"
    with signed_in(live, "owner") as owner:
        org = owner.post("/api/organizations", {"name": "Acme Holdings", "account_ids": [team.account_id]}).json()
        named = owner.post(f"/api/organizations/{org['id']}/roles", {"user": "admin@acme.example", "role": "admin"})
        assert named.status_code == 200
    attempts = {"admin": "owner", "member": "admin", "viewer": "member"}
    for role, wanted in attempts.items():
        with signed_in(live, role) as climber:
            me = getattr(team, role).label
            raised = climber.post(f"{members}/{me}/role", {"role": wanted})
            assert (raised.status_code, raised.json()["error"]) == (403, "forbidden"), role
            if role == "admin":
                org_raise = climber.post(f"/api/organizations/{org['id']}/roles", {"user": me, "role": "owner"})
                assert (org_raise.status_code, org_raise.json()["error"]) == (403, "forbidden")
            assert climber.get("/api/session").status_code == 200
    with signed_in(live, "owner") as owner:
        roles = {m["email"]: m["role"] for m in owner.get(members).json()["data"]}
        people = {p["email"]: p["role"] for p in owner.get(f"/api/organizations/{org['id']}").json()["people"]}
    assert roles == {
        "owner@acme.example": "owner",
        "admin@acme.example": "admin",
        "member@acme.example": "member",
        "viewer@acme.example": "viewer",
    }
    assert people == {"owner@acme.example": "owner", "admin@acme.example": "admin"}


def test_an_organization_takes_at_most_fifty_workspaces_at_creation(live: LiveServer, team: Team) -> None:
    with signed_in(live, "owner") as owner:
        flood = owner.post("/api/organizations", {"name": "Flood", "account_ids": [team.account_id] * 51})
        assert (flood.status_code, flood.json()["error"]) == (422, "invalid_request")
        assert "at most 50" in flood.json()["message"]
        assert owner.get("/api/organizations").json()["data"] == []
        made = owner.post("/api/organizations", {"name": "Acme Holdings", "account_ids": [team.account_id]})
        assert made.status_code == 201
