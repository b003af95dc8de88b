"""n8n clients in a real browser: an admin rotates an instance's secret and revokes it from the panel, and an admin
sent another workspace's authorize link gets a page saying why they cannot approve it; axe-core on each page."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
from playwright.sync_api import BrowserContext, expect

from tests.connect import authorize_params, connect, register
from tests.web.browser import check_accessibility, screenshot, sign_in
from tests.web.conftest import Site
from tests.web.test_panel_browser import close_reveal, revealed


def test_admin_rotates_then_revokes_an_n8n_instance(context: BrowserContext, site: Site) -> None:
    platform = register(site.database, "n8n", site.team.account_id, site.team.admin)
    tokens = connect(site.base_url, platform, site.team.account_id)
    page = context.new_page()
    sign_in(page, "admin@acme.example")
    row = page.locator("#n8n tbody tr", has_text=platform.client_id)
    row.locator("summary", has_text="Rotate secret").click()
    row.get_by_label("The old secret keeps working for").select_option("3600")
    row.get_by_role("button", name=f"Rotate the secret of {platform.client_id}").click()
    new_secret = revealed(page, "Client Secret")
    assert new_secret != platform.client_secret
    expect(page.get_by_role("dialog")).to_contain_text("keeps working until")
    check_accessibility(page, "reveal-client-secret")
    screenshot(page, "reveal-client-secret", full_page=False)
    close_reveal(page, site)
    assert new_secret not in page.content()
    expect(page.locator("#n8n tbody tr", has_text=platform.client_id)).to_contain_text("the old one works until")
    for secret in (platform.client_secret, new_secret):
        looked = httpx.post(f"{site.base_url}/oauth/introspect", data={"token": tokens["access_token"]},
                            auth=(platform.client_id, secret), timeout=30)  # fmt: skip
        assert looked.json()["active"] is True

    row = page.locator("#n8n tbody tr", has_text=platform.client_id)
    row.locator("summary", has_text="Revoke").click()
    row.get_by_role("button", name=f"Revoke {platform.client_id} now").click()
    page.wait_for_url(f"{site.base_url}{site.panel()}#n8n")
    expect(page.get_by_role("status").filter(has_text="was revoked; 1 connection ended")).to_be_visible()
    expect(page.locator("#n8n tbody tr", has_text=platform.client_id)).to_have_count(0)
    check_accessibility(page, "panel-client-revoked")
    answer = httpx.get(f"{site.base_url}/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert answer.status_code == 401 and answer.json()["error"] == "reconnect_required"


def test_another_workspaces_instance_cannot_be_approved(context: BrowserContext, site: Site) -> None:
    theirs = register(site.database, "n8n", site.team.other_account_id, site.team.outsider)
    page = context.new_page()
    sign_in(page, "admin@acme.example")
    answer = page.goto("/oauth/authorize?" + urlencode(authorize_params(theirs)))
    assert answer is not None and answer.status == 403
    expect(page.locator("main")).to_contain_text("registered by the workspace “Globex”")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    check_accessibility(page, "consent-refused-other-workspace")
    screenshot(page, "consent-refused-other-workspace")
