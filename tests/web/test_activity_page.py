"""The activity page's disconnect button: an admin ends a suspect connection from the activity list and lands back on
the same filtered list with a flash; a second try is refused with a flash, not an error; a member sees no page."""

from __future__ import annotations

import re
from html import unescape

import httpx

from tests.live import LiveServer
from tests.makers import Keys
from tests.support import Team
from tests.web.admin_session import signed_in


def test_an_admin_disconnects_a_connection_from_the_activity_page(live: LiveServer, make: Keys, team: Team) -> None:
    token = make.partner_token("make")
    links = f"{live.base_url}/v1/workspaces/{team.account_id}/links"
    made = httpx.post(links, headers={"Authorization": f"Bearer {token}"}, json={"destination": "https://example.com/"})
    assert made.status_code == 201, made.text
    page_path = f"/workspaces/{team.account_id}/activity"

    with signed_in(live, "admin") as admin:
        [connection] = admin.get(f"/api/workspaces/{team.account_id}/connections").json()["data"]
        credential_id = connection["credential_id"]
        page = admin.get(page_path, credential=credential_id)
        assert page.status_code == 200, page.text
        action = f"{page_path}/connections/{connection['id']}/disconnect"
        form = re.search(rf'<form method="post" action="{re.escape(action)}">(.*?)</form>', page.text, re.S)
        assert form is not None, page.text
        assert f'name="csrf_token" value="{admin.csrf_token}"' in form.group(1)
        assert "Disconnect Make now" in form.group(1)

        fields = {"csrf_token": admin.csrf_token, "credential": credential_id}
        ended = admin.client.post(action, data=fields)
        assert ended.status_code == 303
        assert ended.headers["location"] == f"{page_path}?credential={credential_id}"
        after = unescape(admin.client.get(ended.headers["location"]).text)
        assert "Make was disconnected: its token stops working now." in after
        assert f'action="{action}"' not in after  # no button for a connection that has ended

        again = admin.client.post(action, data=fields)
        assert again.status_code == 303
        assert f"Connection {connection['id']} is already disconnected." in unescape(admin.client.get(page_path).text)
    assert httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    with signed_in(live, "member") as member:
        assert member.get(page_path).status_code == 403
