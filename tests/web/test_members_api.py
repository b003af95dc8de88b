"""Members through the admin JSON API: list, change role, remove; who may, the last owner, one clear error each, every
change and refusal audited; a removed or demoted person's sessions end while the keys they made keep working."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from tests.live import LiveServer
from tests.makers import Keys
from tests.support import Team
from tests.web.admin_session import signed_in
from token_broker.store.models import AuditEvent


def audit_rows(live: LiveServer, action: str) -> list[tuple[str, str | None, str | None]]:
    with live.resources.database.read() as session:
        rows = session.execute(
            select(AuditEvent.outcome, AuditEvent.reason, AuditEvent.target_id)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_members_are_listed_to_every_role_and_hidden_from_outsiders(live: LiveServer, team: Team) -> None:
    path = f"/api/workspaces/{team.account_id}/members"
    with signed_in(live, "viewer") as viewer:
        listed = viewer.get(path)
        assert listed.status_code == 200
        assert {m["email"]: m["role"] for m in listed.json()["data"]} == {
            "owner@acme.example": "owner",
            "admin@acme.example": "admin",
            "member@acme.example": "member",
            "viewer@acme.example": "viewer",
        }
    with signed_in(live, "outsider") as outsider:
        assert outsider.get(path).status_code == 404


def test_bad_requests_get_one_clear_error_each(live: LiveServer, team: Team) -> None:
    base = f"/api/workspaces/{team.account_id}/members"
    member = team.member.label
    with signed_in(live, "admin") as admin:
        cases = [
            (admin.post(f"{base}/usr_nobody/remove"), 404, "not_found"),
            (admin.post(f"{base}/{team.outsider.label}/remove"), 404, "not_found"),
            (admin.post(f"{base}/{member}/role", {"role": "emperor"}), 422, "invalid_request"),
            (admin.post(f"{base}/{member}/role", {"role": "member"}), 409, "conflict"),
            (admin.post(f"{base}/{member}/role", {"role": "viewer", "extra": 1}), 422, "invalid_request"),
            (admin.post(f"{base}/{team.owner.label}/remove"), 403, "forbidden"),
            (admin.post(f"{base}/{team.owner.label}/role", {"role": "admin"}), 403, "forbidden"),
            (admin.post(f"{base}/{member}/role", {"role": "owner"}), 403, "forbidden"),
            (admin.post(f"{base}/{member}/remove", csrf=False), 403, "csrf_failed"),
            (admin.post(f"/api/workspaces/{team.other_account_id}/members/{member}/remove"), 404, "not_found"),
        ]
        for answer, status, code in cases:
            assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
            assert answer.json()["message"]
    with signed_in(live, "member") as plain:
        refused = plain.post(f"{base}/{team.viewer.label}/remove")
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    with signed_in(live, "owner") as owner:
        last = owner.post(f"{base}/{team.owner.label}/remove")
        assert (last.status_code, last.json()["error"]) == (409, "conflict")
        assert "last owner" in last.json()["message"]
        demote = owner.post(f"{base}/{team.owner.label}/role", {"role": "admin"})
        assert (demote.status_code, demote.json()["error"]) == (409, "conflict")
    reasons = [reason for outcome, reason, _ in audit_rows(live, "membership.removed") if outcome == "refused"]
    assert reasons.count("not_found") == 3 and reasons.count("forbidden") == 2 and "conflict" in reasons


def test_removing_a_member_ends_their_sessions_and_keeps_their_key(live: LiveServer, team: Team, make: Keys) -> None:
    key = make.workspace_key(name="Admin's nightly export")
    base = f"/api/workspaces/{team.account_id}/members"
    with signed_in(live, "admin") as leaving, signed_in(live, "owner") as owner:
        assert leaving.get(f"/api/workspaces/{team.account_id}/keys").status_code == 200
        removed = owner.post(f"{base}/{team.admin.label}/remove")
        assert removed.status_code == 200 and removed.json()["status"] == "removed"
        gone = leaving.get(f"/api/workspaces/{team.account_id}/keys")
        assert gone.status_code == 401 and gone.json()["error"] == "not_signed_in"
        works = httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {key.plaintext}"})
        assert works.status_code == 200, "the key they made belongs to the workspace and keeps working"
        listed = {m["user_id"] for m in owner.get(base).json()["data"]}
        assert team.admin.label not in listed
        panel = owner.client.get(f"/workspaces/{team.account_id}/api-access")
        assert "admin@acme.example (former member)" in panel.text
    assert audit_rows(live, "membership.removed")[-1] == ("ok", None, team.admin.label)


def test_a_demotion_ends_sessions_and_a_promotion_does_not(live: LiveServer, team: Team) -> None:
    base = f"/api/workspaces/{team.account_id}/members"
    with signed_in(live, "viewer") as viewer, signed_in(live, "member") as member, signed_in(live, "owner") as owner:
        up = owner.post(f"{base}/{team.viewer.label}/role", {"role": "admin"})
        assert up.status_code == 200 and up.json()["role"] == "admin"
        assert viewer.get("/api/session").status_code == 200
        down = owner.post(f"{base}/{team.member.label}/role", {"role": "viewer"})
        assert down.status_code == 200 and down.json()["role"] == "viewer"
        assert member.get("/api/session").status_code == 401
        assert owner.post(f"{base}/{team.viewer.label}/role", {"role": "owner"}).status_code == 200
        assert owner.post(f"{base}/{team.owner.label}/role", {"role": "admin"}).status_code == 200, (
            "no longer the last owner"
        )
    rows = audit_rows(live, "membership.role_changed")
    assert [outcome for outcome, _, _ in rows] == ["ok", "ok", "ok", "ok"]


def test_the_people_page_refuses_with_a_message_and_keeps_controls_from_viewers(live: LiveServer, team: Team) -> None:
    page_path = f"/workspaces/{team.account_id}/people"
    with signed_in(live, "admin") as admin:
        page = admin.client.get(page_path)
        assert page.status_code == 200 and "owner@acme.example" in page.text
        form = {"csrf_token": admin.csrf_token}
        refused = admin.client.post(f"{page_path}/{team.owner.label}/remove", data=form)
        assert refused.status_code == 303 and refused.headers["location"] == page_path
        shown = admin.client.get(page_path).text
        assert "only an owner can remove, demote or appoint owners" in shown
        stale = admin.client.post(f"{page_path}/{team.member.label}/remove", data={"csrf_token": "forged"})
        assert stale.status_code == 403
        elsewhere = admin.client.post(
            f"/workspaces/{team.other_account_id}/people/{team.outsider.label}/remove", data=form
        )
        assert elsewhere.status_code == 404
    with signed_in(live, "viewer") as viewer:
        page = viewer.client.get(page_path)
        assert page.status_code == 200 and "Change role" not in page.text and "/remove" not in page.text
    assert [outcome for outcome, _, _ in audit_rows(live, "membership.removed")] == ["refused"]
