"""Organizations through the admin JSON API and the governance view's JSON: create, place workspaces, name owners and
admins; who may; the last owner; one clear error each; every change audited; the governance filters."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from tests.live import LiveServer
from tests.makers import Keys
from tests.support import Team
from tests.web.admin_session import signed_in
from token_broker.store.models import AuditEvent, Credential, utcnow


def audit(live: LiveServer, action: str) -> list[tuple[str, str | None]]:
    with live.resources.database.read() as session:
        rows = session.execute(
            select(AuditEvent.outcome, AuditEvent.reason).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
        return [(outcome, reason) for outcome, reason in rows]


def test_an_owner_creates_an_organization_places_a_workspace_and_names_an_admin(live: LiveServer, team: Team) -> None:
    with signed_in(live, "owner") as owner:
        made = owner.post("/api/organizations", {"name": "Acme Holdings", "account_ids": [team.account_id]})
        assert made.status_code == 201, made.text
        org = made.json()
        assert org["id"].startswith("org_") and org["role"] == "owner"
        assert org["workspaces"] == [{"account_id": team.account_id, "name": "Acme"}]
        assert [p["email"] for p in org["people"]] == ["owner@acme.example"]
        named = owner.post(f"/api/organizations/{org['id']}/roles", {"user": "admin@acme.example", "role": "admin"})
        assert named.status_code == 200
        assert {p["email"]: p["role"] for p in named.json()["people"]}["admin@acme.example"] == "admin"
        assert owner.get("/api/organizations").json()["data"] == [
            {"id": org["id"], "name": "Acme Holdings", "governs": True}
        ]
        cases = [
            (owner.post("/api/organizations", {"name": ""}), 422, "invalid_request"),
            (owner.post("/api/organizations", {"name": "X", "account_ids": [team.other_account_id]}), 404, "not_found"),
            (owner.post("/api/organizations", {"name": "X", "account_ids": [team.account_id]}), 409, "conflict"),
            (
                owner.post("/api/organizations/org_nothing/workspaces", {"account_id": team.account_id}),
                404,
                "not_found",
            ),
            (
                owner.post(f"/api/organizations/{org['id']}/workspaces", {"account_id": team.account_id}),
                409,
                "conflict",
            ),
            (
                owner.post(f"/api/organizations/{org['id']}/roles", {"user": "nobody@x.example", "role": "admin"}),
                404,
                "not_found",
            ),
            (
                owner.post(f"/api/organizations/{org['id']}/roles", {"user": "owner@acme.example", "role": "none"}),
                409,
                "conflict",
            ),
            (
                owner.post(f"/api/organizations/{org['id']}/roles", {"user": "member@acme.example", "role": "boss"}),
                422,
                "invalid_request",
            ),
            (owner.post("/api/organizations", {"name": "X"}, csrf=False), 403, "csrf_failed"),
        ]
        for answer, status, code in cases:
            assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
        assert "last owner" in cases[6][0].json()["message"]
    with signed_in(live, "admin") as admin:
        refused = admin.post(f"/api/organizations/{org['id']}/roles", {"user": "member@acme.example", "role": "admin"})
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
        assert admin.get(f"/api/organizations/{org['id']}").status_code == 200
    with signed_in(live, "member") as member:
        assert member.get(f"/api/organizations/{org['id']}").status_code == 404
        assert member.get(f"/api/organizations/{org['id']}/governance").status_code == 404
    with signed_in(live, "outsider") as outsider:
        placed = outsider.post(f"/api/organizations/{org['id']}/workspaces", {"account_id": team.other_account_id})
        assert placed.status_code == 404
    assert audit(live, "organization.created")[0] == ("ok", None)
    assert ("refused", "not_found") in audit(live, "organization.created")
    assert audit(live, "organization.role_changed")[0] == ("ok", None)
    assert ("refused", "forbidden") in audit(live, "organization.role_changed")
    assert ("refused", "conflict") in audit(live, "organization.workspace_added")


def test_the_governance_view_filters(live: LiveServer, team: Team, make: Keys) -> None:
    fresh = make.workspace_key(name="Fresh", expires_in=86400, allowed_ips=["203.0.113.0/24"])
    stale = make.workspace_key(name="Stale")
    used = make.workspace_key(name="Used today")
    make.partner_token("zapier")
    make.partner_token("make")
    with live.resources.database.write() as session:
        now = utcnow()
        session.execute(update(Credential).where(Credential.public_id == stale.view.id)
                        .values(last_used_at=now - timedelta(days=120)))  # fmt: skip
        session.execute(update(Credential).where(Credential.public_id == used.view.id).values(last_used_at=now))
    with signed_in(live, "owner") as owner:
        org = owner.post("/api/organizations", {"name": "Acme Holdings", "account_ids": [team.account_id]}).json()
        path = f"/api/organizations/{org['id']}/governance"

        def names(**query: str) -> set[str]:
            answer = owner.get(path, **query)
            assert answer.status_code == 200, answer.text
            return {item["name"] for item in answer.json()["credentials"]}

        everything = owner.get(path).json()
        assert {"Fresh", "Stale", "Used today"} <= names()
        row = next(item for item in everything["credentials"] if item["name"] == "Fresh")
        assert row["account_id"] == team.account_id and row["workspace"] == "Acme" and row["kind"] == "workspace_key"
        assert row["allowed_ips"] == ["203.0.113.0/24"] and row["expires_at"] is not None
        assert {c["platform"] for c in everything["connections"]} == {"zapier", "make"}
        assert "Used today" not in names(usage="never_used") and "Stale" not in names(usage="never_used")
        assert "Stale" in names(usage="unused_90_days") and "Used today" not in names(usage="unused_90_days")
        assert "Fresh" not in names(no_expiry="1") and "Stale" in names(no_expiry="1")
        assert "Fresh" not in names(no_ip_allow_list="1") and "Stale" in names(no_ip_allow_list="1")
        only_make = owner.get(path, platform="make").json()["connections"]
        assert [c["platform"] for c in only_make] == ["make"]
        for bad in ({"usage": "sometimes"}, {"platform": "ifttt"}, {"no_expiry": "maybe"}):
            refused = owner.get(path, **bad)
            assert refused.status_code == 422 and refused.json()["error"] == "invalid_request", bad
    assert fresh.plaintext
