"""The per-workspace choice between revoking a leaked credential and only notifying: read by any role, changed by
owners and admins through the admin JSON API and the panel's form, audited; attempts by others refused."""

from __future__ import annotations

from sqlalchemy import select

from tests.browser_forms import forms
from tests.live import LiveServer
from tests.support import Team
from tests.web.admin_session import signed_in
from token_broker.services import leak_settings
from token_broker.store.models import AuditEvent


def test_the_admin_api_reads_and_changes_it(live: LiveServer, team: Team) -> None:
    path = f"/api/workspaces/{team.account_id}/settings"
    with signed_in(live, "viewer") as viewer:
        assert viewer.get(path).json() == {"leak_response": "revoke"}
        refused = viewer.client.patch(path, json={"leak_response": "notify"},
                                      headers={"X-CSRF-Token": viewer.csrf_token})  # fmt: skip
        assert refused.status_code == 403
    with signed_in(live, "outsider") as outsider:
        assert outsider.get(path).status_code == 404
        attempt = outsider.client.patch(path, json={"leak_response": "notify"},
                                        headers={"X-CSRF-Token": outsider.csrf_token})  # fmt: skip
        assert attempt.status_code == 404
    with signed_in(live, "admin") as admin:
        assert admin.client.patch(path, json={"leak_response": "notify"}).status_code == 403  # no CSRF header
        headers = {"X-CSRF-Token": admin.csrf_token}
        bad = admin.client.patch(path, json={"leak_response": "ignore"}, headers=headers)
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
        unknown = admin.client.patch(path, json={"other": 1}, headers=headers)
        assert unknown.status_code == 422
        changed = admin.client.patch(path, json={"leak_response": "notify"}, headers=headers)
        assert changed.status_code == 200 and changed.json() == {"leak_response": "notify"}
    assert leak_settings.leak_response(live.resources.database, team.member, team.account_id) == "notify"
    with live.resources.database.read() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == "workspace.leak_response_changed")).all()
    outcomes = sorted((row.outcome, row.details.get("to")) for row in rows)
    assert ("ok", "notify") in outcomes and any(outcome == "refused" for outcome, _ in outcomes)


def test_the_panel_shows_it_and_owners_change_it(live: LiveServer, team: Team) -> None:
    page_path = f"/workspaces/{team.account_id}/api-access"
    action = f"{page_path}/leak-response"
    with signed_in(live, "member") as member:
        page = member.get(page_path).text
        assert "When a key leaks" in page and "Revoke it at once" in page
        assert action not in [form["action"] for form in forms(page)]
        attempt = member.client.post(action, data={"csrf_token": form_token(page), "leak_response": "notify"})
        assert attempt.status_code in (403, 404)
    with signed_in(live, "owner") as owner:
        page = owner.get(page_path).text
        assert action in [form["action"] for form in forms(page)]
        answer = owner.client.post(action, data={"csrf_token": form_token(page), "leak_response": "notify"})
        assert answer.status_code == 303
        assert 'value="notify" checked' in owner.get(page_path).text
    assert leak_settings.leak_response(live.resources.database, team.owner, team.account_id) == "notify"


def form_token(page: str) -> str:
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]
