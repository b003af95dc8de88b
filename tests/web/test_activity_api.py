"""Recent activity through the admin JSON API: link changes made by keys and platform tokens, newest first, with the
credential, address and time, filtered by credential; every role of the workspace reads it, outsiders get 404; a suspect
connection disconnected."""

from __future__ import annotations

import httpx

from tests.live import LiveServer
from tests.makers import Keys
from tests.support import Team
from tests.web.admin_session import signed_in


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_activity_lists_who_changed_what_and_filters_by_credential(live: LiveServer, make: Keys, team: Team) -> None:
    key = make.workspace_key(name="Nightly import", rate_limits=["1000/minute"])
    token = make.partner_token("make")
    base = f"{live.base_url}/v1/workspaces/{team.account_id}/links"
    made = httpx.post(base, headers=bearer(key.plaintext), json={"destination": "https://example.com/a", "slug": "a"})
    assert made.status_code == 201
    link_id = made.json()["id"]
    moved = httpx.patch(f"{base}/{link_id}", headers=bearer(token), json={"destination": "https://evil.example/"})
    assert moved.status_code == 200
    assert httpx.delete(f"{base}/{link_id}", headers=bearer(key.plaintext)).status_code == 204
    httpx.get(f"{live.base_url}/r/nothing")  # clicks and misses are not activity

    path = f"/api/workspaces/{team.account_id}/activity"
    with signed_in(live, "admin") as admin:
        listed = admin.get(path)
        assert listed.status_code == 200, listed.text
        items = listed.json()["data"]
        assert [item["type"] for item in items] == ["link.deleted", "link.updated", "link.created"]
        update = items[1]
        assert set(update) == {"id", "type", "link_id", "credential", "address", "created_at"}
        assert update["link_id"] == link_id
        assert update["address"] == "127.0.0.1" and update["created_at"].endswith("Z")
        credential = update["credential"]
        assert set(credential) == {"id", "name", "kind", "platform"}
        assert credential["kind"] == "partner_install_token" and credential["platform"] == "make"
        assert items[2]["credential"]["name"] == "Nightly import"
        assert items[2]["credential"]["kind"] == "workspace_key" and items[2]["credential"]["platform"] is None

        only = admin.get(path, credential=credential["id"]).json()
        assert [item["type"] for item in only["data"]] == ["link.updated"]
        assert admin.get(path, limit="1").json()["has_more"] is True
        for bad in ({"credential": "not-a-key"}, {"limit": "0"}, {"before": "x"}):
            refused = admin.get(path, **bad)
            assert refused.status_code == 422 and refused.json()["error"] == "invalid_request", bad

        [connection] = admin.get(f"/api/workspaces/{team.account_id}/connections").json()["data"]
        ended = admin.post(f"/api/workspaces/{team.account_id}/connections/{connection['id']}/disconnect")
        assert ended.status_code == 200
        assert admin.get(path, credential=credential["id"]).json()["data"][0]["credential"] == credential
    assert httpx.get(f"{live.base_url}/v1/me", headers=bearer(token)).status_code == 401

    for role in ("owner", "member", "viewer"):
        with signed_in(live, role) as someone:
            seen = someone.get(path)
            assert seen.status_code == 200 and [item["id"] for item in seen.json()["data"]] == [i["id"] for i in items]
    with signed_in(live, "outsider") as outsider:
        refused = outsider.get(path)
        assert refused.status_code == 404 and refused.json()["error"] == "not_found"
        assert outsider.get(path, credential=credential["id"]).status_code == 404
