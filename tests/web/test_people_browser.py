"""Organizations, people and recent activity in the real Chromium: switching organization and workspace, the
governance view's filters, removing a member (their session ends, their key keeps working and is marked), and recent
activity after a platform token changes a destination; axe-core on every page."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Browser, BrowserContext, expect

from tests.support import PASSWORD, add_member
from tests.web.browser import check_accessibility, screenshot, sign_in
from tests.web.conftest import Site
from token_broker.services import keys, organizations, workspaces
from token_broker.services.actors import Actor
from token_broker.services.keys import KeyRequest


def me(site: Site, secret: str) -> httpx.Response:
    return httpx.get(f"{site.base_url}/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def test_switching_organization_and_workspace(context: BrowserContext, site: Site) -> None:
    operator = Actor.operator()
    labs = workspaces.create_workspace(site.database, operator, "Labs")
    add_member(site.database, site.make.hasher, site.team.account_id, "member", "switcher@acme.example")
    workspaces.add_user(site.database, site.make.hasher, operator, "switcher@acme.example", PASSWORD, labs, "admin")
    organizations.create_organization(site.database, operator, "Acme Group", [site.team.account_id],
                                      ["owner@acme.example"])  # fmt: skip
    beta = organizations.create_organization(site.database, operator, "Beta Group", [labs], ["owner@acme.example"])

    page = context.new_page()
    sign_in(page, "switcher@acme.example")
    expect(page.locator("header .org")).to_have_text("Acme Group")
    organization = page.get_by_label("Organization", exact=True)
    expect(organization).to_have_value(re.compile("^org_"))
    check_accessibility(page, "switcher-two-organizations")
    organization.select_option(label="Beta Group")
    page.get_by_role("button", name="Open organization").click()
    page.wait_for_url(f"**/workspaces/{labs}/api-access")
    expect(page.locator("header .org")).to_have_text("Beta Group")
    expect(page.locator("header .workspace-name")).to_have_text("Labs")
    active = page.request.get("/api/session/active").json()
    assert active == {"organization_id": beta.id, "account_id": labs}
    page.goto("/")
    page.wait_for_url(f"**/workspaces/{labs}/api-access")  # the session's active workspace, not the first one

    page.get_by_label("Workspace", exact=True).select_option(label="Acme (member)")
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url(f"**/workspaces/{site.team.account_id}/api-access")
    expect(page.locator("header .org")).to_have_text("Acme Group")
    assert page.request.get("/api/session/active").json()["account_id"] == site.team.account_id
    check_accessibility(page, "switcher-switched")
    screenshot(page, "switcher-switched")


def test_governance_view_filters(context: BrowserContext, site: Site) -> None:
    operator = Actor.operator()
    gov = workspaces.create_workspace(site.database, operator, "Governed")
    owner = add_member(site.database, site.make.hasher, gov, "owner", "gov-owner@acme.example")
    keys.create_key(site.database, site.make.hasher, owner, gov, KeyRequest(name="Open key"))
    keys.create_key(site.database, site.make.hasher, owner, gov,
                    KeyRequest(name="Fenced key", allowed_ips=["203.0.113.0/24"], expires_in=86400))  # fmt: skip

    page = context.new_page()
    sign_in(page, "gov-owner@acme.example")
    page.get_by_role("link", name="Organizations").click()
    page.get_by_label("Name", exact=True).fill("Governed Group")
    page.get_by_label("Governed").check()
    check_accessibility(page, "organizations")
    page.get_by_role("button", name="Create organization").click()
    page.wait_for_url(re.compile(r".*/organizations/org_[0-9A-Za-z]+$"))
    expect(page.get_by_role("status")).to_contain_text("you are its owner")
    check_accessibility(page, "organization")
    page.get_by_role("link", name="Governance", exact=True).first.click()
    expect(page.get_by_role("heading", name="Governance of Governed Group")).to_be_visible()
    rows = page.locator("#gov-credentials tbody tr")
    expect(rows).to_have_count(2)
    check_accessibility(page, "governance")
    screenshot(page, "governance")

    page.get_by_label("Keys with no IP allow-list").check()
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Open key")
    expect(rows.first.get_by_role("link", name="Governed")).to_have_attribute("href", f"/workspaces/{gov}/api-access")
    page.get_by_label("Keys with no IP allow-list").uncheck()
    page.get_by_label("Keys with no expiry").check()
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Open key")
    page.get_by_role("link", name="Clear filters").click()
    page.get_by_label("Keys used").select_option(label="Never used")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(2)
    check_accessibility(page, "governance-filtered")


def test_removing_a_member_ends_their_session_and_marks_their_key(
    browser: Browser, context: BrowserContext, site: Site
) -> None:
    leaver = add_member(site.database, site.make.hasher, site.team.account_id, "admin", "leaver@acme.example")
    key = keys.create_key(
        site.database, site.make.hasher, leaver, site.team.account_id, KeyRequest(name="Leaver's key")
    )
    assert key.plaintext is not None
    theirs = browser.new_context(base_url=site.base_url)
    try:
        their_page = theirs.new_page()
        sign_in(their_page, "leaver@acme.example")

        page = context.new_page()
        sign_in(page, "owner@acme.example")
        page.get_by_role("link", name="People").click()
        expect(page.get_by_role("heading", name="People", level=1)).to_be_visible()
        check_accessibility(page, "people")
        row = page.locator("#members tbody tr", has_text="leaver@acme.example")
        row.locator("summary", has_text="Remove").click()
        row.get_by_role("button", name="Remove leaver@acme.example").click()
        expect(page.get_by_role("status")).to_contain_text("was removed")
        expect(page.locator("#members")).not_to_contain_text("leaver@acme.example")
        screenshot(page, "people-after-removal")

        their_page.reload()
        their_page.wait_for_url(re.compile(r".*/login\?next=.*"))
        assert me(site, key.plaintext).status_code == 200, "their key belongs to the workspace and keeps working"
        page.goto(site.panel())
        key_row = page.locator("#keys tbody tr", has_text="Leaver's key")
        expect(key_row).to_contain_text("leaver@acme.example (former member)")
        check_accessibility(page, "panel-former-member")
    finally:
        theirs.close()


def test_recent_activity_after_a_platform_token_changes_a_destination(context: BrowserContext, site: Site) -> None:
    writer = site.make.workspace_key(name="Link writer")
    token = site.make.partner_token("make")
    base = f"{site.base_url}/v1/workspaces/{site.team.account_id}/links"
    made = httpx.post(base, headers={"Authorization": f"Bearer {writer.plaintext}"},
                      json={"destination": "https://example.com/promo", "slug": "promo-activity"})  # fmt: skip
    assert made.status_code == 201
    moved = httpx.patch(f"{base}/{made.json()['id']}", headers={"Authorization": f"Bearer {token}"},
                        json={"destination": "https://attacker.example/"})  # fmt: skip
    assert moved.status_code == 200

    page = context.new_page()
    sign_in(page, "admin@acme.example")
    page.get_by_role("link", name="Recent activity").click()
    expect(page.get_by_role("heading", name="Recent activity", level=1)).to_be_visible()
    newest = page.locator("#activity tbody tr").first
    expect(newest).to_contain_text("link.updated")
    expect(newest).to_contain_text("https://attacker.example/")
    expect(newest).to_contain_text("was https://example.com/promo")
    expect(newest).to_contain_text("Make connection")
    expect(newest).to_contain_text("127.0.0.1")
    check_accessibility(page, "activity")
    screenshot(page, "activity")

    newest.get_by_role("link", name="only this credential").click()
    expect(page.locator("#activity tbody tr")).to_have_count(1)
    row = page.locator("#activity tbody tr").first
    row.locator("summary", has_text="Disconnect").click()
    row.get_by_role("button", name="Disconnect Make now").click()
    expect(page.get_by_role("status")).to_contain_text("was disconnected")
    expect(page.locator("#activity tbody tr").first).to_contain_text("disconnected")
    assert me(site, token).status_code == 401
    check_accessibility(page, "activity-after-disconnect")
