"""The panel lists what the workspace's admins were told."""

from __future__ import annotations

import httpx

from tests.browser_forms import sign_in
from tests.live import LiveServer
from tests.makers import Keys
from tests.support import PASSWORD, Team
from token_broker.services import connections, keys


def test_the_panel_shows_notices(live: LiveServer, make: Keys, team: Team) -> None:
    issued = make.workspace_key(name="Reporting")
    keys.rotate_key(make.database, make.hasher, team.admin, issued.view.id, grace_seconds=0)
    keys.revoke_key(make.database, team.admin, issued.view.id)
    make.partner_token("make")
    [connection] = connections.list_connections(make.database, team.admin, team.account_id)
    connections.disconnect(make.database, team.owner, connection.id)
    with httpx.Client(base_url=live.base_url) as browser:
        sign_in(browser, "viewer@acme.example", PASSWORD)
        page = browser.get(f"/workspaces/{team.account_id}/api-access").text
    notices = page[page.index('id="notices"') : page.index('id="hooks"')]
    assert "Key “Reporting”" in notices and "was revoked" in notices and "stopped at once" in notices
    assert "Make connection" in notices and "owner@acme.example" in notices
