"""The API access panel in a real browser (Debian's Chromium through Playwright), on SQLite: what admins do, what
viewers see, a real connect flow disconnected, keyboard and phone-width use, and axe-core on every page."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from tests.connect import CALLBACKS, Platform, authorize_params, exchange, refresh
from tests.web.browser import check_accessibility, screenshot, sign_in
from tests.web.conftest import Site
from tests.webhooks.receivers import receiver
from token_broker.services import connections, keys, webhook_overview
from token_broker.services.actors import Actor

KEY_PATTERN = re.compile(r"nim_(?:key|pat|prt)_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}")


def me(site: Site, secret: str) -> httpx.Response:
    return httpx.get(f"{site.base_url}/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def key_row(page: Page, name: str) -> Page:
    row = page.locator("#keys tbody tr", has=page.locator(".key-name", has_text=re.compile(f"^{re.escape(name)}$")))
    expect(row).to_have_count(1)
    return row  # type: ignore[return-value]


def revealed(page: Page, label: str) -> str:
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("it will not be shown again")
    return dialog.get_by_label(label, exact=True).input_value()


def on_panel(page: Page, site: Site) -> None:
    """Wait until the browser is on the panel (redirects back to it name the section, as in #keys)."""
    page.wait_for_url(re.compile(re.escape(site.base_url + site.panel()) + r"(#[a-z]+)?$"))


def close_reveal(page: Page, site: Site) -> None:
    page.get_by_role("dialog").get_by_role("link", name="I have copied it: close").click()
    on_panel(page, site)
    expect(page.get_by_role("dialog")).to_have_count(0)


def test_login_page(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    page.goto("/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    check_accessibility(page, "login")
    screenshot(page, "login")


def test_admin_generates_copies_rotates_and_revokes_a_key(context: BrowserContext, site: Site) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.base_url)
    page = context.new_page()
    sign_in(page, "admin@acme.example")
    expect(page.get_by_role("heading", name="API access", level=1)).to_be_visible()
    check_accessibility(page, "panel-admin")
    screenshot(page, "panel-admin")

    page.get_by_label("Name", exact=True).fill("Browser key")
    page.get_by_label("Only these scopes:").check()
    page.get_by_label(re.compile("links:read")).check()
    page.get_by_role("button", name="Generate key").click()
    shown = revealed(page, "API key")
    assert page.evaluate("document.querySelector('dialog').matches(':modal')"), "the reveal dialog is modal"
    check_accessibility(page, "reveal-key")
    screenshot(page, "reveal-key", full_page=False)

    page.get_by_role("button", name="Copy API key").click()
    expect(page.get_by_role("dialog").get_by_role("status")).to_have_text("Copied to the clipboard.")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == shown and KEY_PATTERN.fullmatch(copied)
    answer = me(site, copied)
    assert answer.status_code == 200 and answer.json()["credential"]["scopes"] == ["links:read"]

    close_reveal(page, site)
    assert copied not in page.content()
    row = key_row(page, "Browser key")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("links:read")
    expect(row).to_contain_text("admin@acme.example")

    row.locator("summary", has_text="Rotate").click()
    row.get_by_label("The old secret keeps working for").select_option(label="1 hour")
    row.get_by_role("button", name="Rotate “Browser key”").click()
    rotated = revealed(page, "API key")
    assert rotated != copied and KEY_PATTERN.fullmatch(rotated)
    expect(page.get_by_role("dialog")).to_contain_text("The previous secret keeps working until")
    screenshot(page, "reveal-rotated", full_page=False)
    assert me(site, copied).status_code == 200, "the old secret works during the grace window"
    assert me(site, rotated).status_code == 200
    close_reveal(page, site)
    expect(key_row(page, "Browser key")).to_contain_text("Previous secret works until")

    row = key_row(page, "Browser key")
    row.locator("summary", has_text="Revoke").click()
    row.get_by_role("button", name="Revoke “Browser key” now").click()
    on_panel(page, site)
    expect(page.get_by_role("status").filter(has_text="was revoked")).to_be_visible()
    row = key_row(page, "Browser key")
    expect(row).to_contain_text("revoked")
    expect(row.locator("summary")).to_have_count(0)
    check_accessibility(page, "panel-after-revoke")
    screenshot(page, "panel-after-revoke")
    for secret in (copied, rotated):
        refused = me(site, secret)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_api_key"


def test_a_refused_form_keeps_what_was_typed(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    sign_in(page, "owner@acme.example")
    page.get_by_label("Name", exact=True).fill("Office only")
    page.get_by_label("Allowed addresses").fill("10.0.0.1/8")
    page.get_by_role("button", name="Generate key").click()
    expect(page.get_by_role("alert")).to_contain_text("did you mean 10.0.0.0/8?")
    field = page.get_by_label("Allowed addresses")
    expect(field).to_have_value("10.0.0.1/8")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    expect(page.get_by_label("Name", exact=True)).to_have_value("Office only")
    check_accessibility(page, "panel-refused-form")
    screenshot(page, "panel-refused-form")


def test_viewer_sees_everything_read_only(context: BrowserContext, site: Site) -> None:
    key = site.make.workspace_key(name="Read-only view key")
    page = context.new_page()
    sign_in(page, "viewer@acme.example")
    expect(key_row(page, "Read-only view key")).to_contain_text(key.view.hint)
    expect(page.locator("#read-only")).to_contain_text("viewer")
    post_forms = page.locator("form[method=post]")
    expect(post_forms).to_have_count(1)  # signing out, nothing else
    expect(post_forms.first).to_have_attribute("action", "/logout")
    expect(page.locator("details, #generate")).to_have_count(0)
    expect(page.get_by_role("button")).to_have_count(1)  # "Sign out"
    for word in ("Generate key", "Rotate", "Revoke", "Disconnect", "Register n8n instance"):
        expect(page.get_by_role("button", name=word)).to_have_count(0)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    check_accessibility(page, "panel-viewer")
    screenshot(page, "panel-viewer")

    page.goto(f"/workspaces/{site.team.account_id}/audit")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    check_accessibility(page, "audit-forbidden-viewer")
    screenshot(page, "audit-forbidden-viewer")
    answer = page.goto(site.panel(site.team.other_account_id))
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    check_accessibility(page, "not-found")
    screenshot(page, "not-found")


def test_admin_disconnects_a_connection_made_by_a_real_connect_flow(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    sign_in(page, "admin@acme.example")
    page.get_by_label("Address of your n8n instance").fill("https://n8n.example.com/")
    page.get_by_role("button", name="Register n8n instance").click()
    client_id, secret = revealed(page, "Client ID"), revealed(page, "Client Secret")
    expect(page.get_by_role("dialog")).to_contain_text(CALLBACKS["n8n"])
    check_accessibility(page, "reveal-n8n")
    screenshot(page, "reveal-n8n", full_page=False)
    close_reveal(page, site)
    expect(page.locator("#n8n")).to_contain_text(client_id)
    assert secret not in page.content()

    # n8n sends its user's browser to the authorize URL; the broker redirects back to n8n's callback with a code.
    n8n = Platform("n8n", client_id, secret, CALLBACKS["n8n"])
    callbacks: list[str] = []

    def at_n8n(route: Route) -> None:
        callbacks.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="n8n: connected")

    page.route("https://n8n.example.com/**", at_n8n)
    page.goto("/oauth/authorize?" + urlencode(authorize_params(n8n)))
    expect(page.get_by_role("heading", name="Connect n8n")).to_be_visible()
    check_accessibility(page, "consent")
    screenshot(page, "consent")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url("https://n8n.example.com/**")
    query = parse_qs(urlsplit(callbacks[-1]).query)
    tokens = exchange(site.base_url, n8n, query["code"][0], style="basic").json()
    assert me(site, tokens["access_token"]).status_code == 200

    [connection] = [c for c in connections.list_connections(site.database, Actor.operator(), site.team.account_id)
                    if c.client_id == client_id]  # fmt: skip
    page.goto(site.panel())
    row = page.locator(f"#connection-{connection.id}")
    expect(row).to_contain_text("n8n")
    expect(row).to_contain_text("active")
    row.locator("summary", has_text="Disconnect").click()
    row.get_by_role("button", name="Disconnect n8n now").click()
    on_panel(page, site)
    expect(page.get_by_role("status").filter(has_text="n8n was disconnected")).to_be_visible()
    row = page.locator(f"#connection-{connection.id}")
    expect(row).to_contain_text("disconnected")
    expect(row).to_contain_text("To reconnect: In n8n, open Credentials")
    expect(row.locator("summary")).to_have_count(0)
    check_accessibility(page, "panel-disconnected")
    screenshot(page, "panel-disconnected")

    refused = me(site, tokens["access_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "reconnect_required"
    again = refresh(site.base_url, n8n, tokens["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_audit_log_filters_and_pages(context: BrowserContext, site: Site) -> None:
    for n in range(30):
        site.make.workspace_key(name=f"audited {n}")
    page = context.new_page()
    sign_in(page, "owner@acme.example")
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Audit log", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Audit log")).to_have_attribute("aria-current", "page")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(25)
    first_ids = [int(i) for i in rows.evaluate_all("rows => rows.map(r => r.dataset.eventId)")]
    assert first_ids == sorted(first_ids, reverse=True)
    check_accessibility(page, "audit")
    screenshot(page, "audit")

    page.get_by_role("link", name="Older events").click()
    older_ids = [int(i) for i in rows.evaluate_all("rows => rows.map(r => r.dataset.eventId)")]
    assert older_ids and max(older_ids) < min(first_ids)
    page.get_by_role("link", name="Newest events").click()
    expect(rows).to_have_count(25)

    page.get_by_label("Action").select_option("credential.created")
    page.get_by_label("Actor").select_option(label="admin@acme.example")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_label("Action")).to_have_value("credential.created")
    actions = rows.locator("td[data-label=Action]").all_inner_texts()
    assert actions and set(actions) == {"credential.created"}
    expect(rows.first.locator("td[data-label=Actor]")).to_have_text("admin@acme.example")
    screenshot(page, "audit-filtered")
    page.get_by_label("Outcome").select_option("refused")
    page.get_by_label("Action").select_option("")
    page.get_by_label("Actor").select_option("")
    page.get_by_role("button", name="Show").click()
    outcomes = rows.locator("td[data-label=Outcome]").all_inner_texts()
    assert outcomes and all(outcome.startswith("refused") for outcome in outcomes)
    page.goto(f"/workspaces/{site.team.account_id}/audit?actor=operator&action=credential.revoked")
    expect(page.get_by_text("No events match these filters.")).to_be_visible()
    page.get_by_role("link", name="Clear filters").click()
    expect(rows).to_have_count(25)


def test_keyboard_only(context: BrowserContext, site: Site) -> None:
    site.make.workspace_key(name="Keyboard key")
    page = context.new_page()
    sign_in(page, "admin@acme.example")
    # The generate form is reached field by field, in reading order.
    page.get_by_label("Name", exact=True).focus()
    order = []
    for _ in range(10):
        order.append(page.evaluate("(e => e.id || e.name || e.textContent.trim())(document.activeElement)"))
        page.keyboard.press("Tab")
    assert order == ["key-name", "access", "scope", "scope", "scope", "scope", "key-expiry", "key-ips",
                     "key-limits", "Generate key"], order  # fmt: skip
    # Revoking needs only the keyboard: open the confirmation, then press its button.
    row = key_row(page, "Keyboard key")
    row.locator("summary", has_text="Revoke").focus()
    page.keyboard.press("Enter")
    expect(row.locator("details", has_text="Revoke")).to_have_attribute("open", "")
    page.keyboard.press("Tab")
    expect(row.get_by_role("button", name="Revoke “Keyboard key” now")).to_be_focused()
    page.keyboard.press("Enter")
    on_panel(page, site)
    expect(key_row(page, "Keyboard key")).to_contain_text("revoked")


def test_phone_width(browser: Browser, site: Site) -> None:
    site.make.workspace_key(name="Phone key", allowed_ips=["2001:db8::/48"], rate_limits=["10/second"])
    phone = browser.new_context(base_url=site.base_url, viewport={"width": 375, "height": 740}, is_mobile=True)
    try:
        page = phone.new_page()
        sign_in(page, "admin@acme.example")
        expect(key_row(page, "Phone key")).to_be_visible()
        fits = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        assert page.evaluate(fits), "the panel scrolls sideways at phone width"
        check_accessibility(page, "panel-phone")
        screenshot(page, "panel-phone", full_page=False)
        row = key_row(page, "Phone key")
        row.scroll_into_view_if_needed()
        row.screenshot(path=str(screenshot(page, "panel-phone-key-row", full_page=False)))
        page.get_by_label("Name", exact=True).fill("Made on a phone")
        page.get_by_role("button", name="Generate key").click()
        assert KEY_PATTERN.fullmatch(revealed(page, "API key"))
        assert page.evaluate(fits), "the reveal dialog scrolls sideways at phone width"
        screenshot(page, "reveal-phone", full_page=False)
    finally:
        phone.close()


def test_without_javascript(browser: Browser, site: Site) -> None:
    plain = browser.new_context(base_url=site.base_url, java_script_enabled=False)
    try:
        page = plain.new_page()
        sign_in(page, "admin@acme.example")
        page.get_by_label("Name", exact=True).fill("No-script key")
        page.get_by_role("button", name="Generate key").click()
        shown = revealed(page, "API key")
        assert me(site, shown).status_code == 200
        expect(page.get_by_role("button", name="Copy API key")).to_be_hidden()
        screenshot(page, "reveal-no-javascript")
        close_reveal(page, site)
        row = key_row(page, "No-script key")
        row.locator("summary", has_text="Revoke").click()
        row.get_by_role("button", name="Revoke “No-script key” now").click()
        expect(key_row(page, "No-script key")).to_contain_text("revoked")
        assert me(site, shown).status_code == 401
    finally:
        plain.close()


def test_workspace_switcher_and_organization(context: BrowserContext, site: Site) -> None:
    from sqlalchemy import select

    from tests.support import PASSWORD
    from token_broker.services import workspaces
    from token_broker.store.models import Organization, Workspace, utcnow

    operator = Actor.operator()
    second = workspaces.create_workspace(site.database, operator, "Acme Labs")
    with site.database.write() as session:
        organization = Organization(public_id="org_acmeholdings01", name="Acme Holdings", created_at=utcnow())
        session.add(organization)
        session.flush()
        for account_id in (site.team.account_id, second):
            session.scalars(
                select(Workspace).where(Workspace.account_id == account_id)
            ).one().organization_id = organization.id
    workspaces.add_user(site.database, site.make.hasher, operator, "member@acme.example", PASSWORD, second, "admin")
    page = context.new_page()
    sign_in(page, "member@acme.example")
    header = page.locator("header")
    expect(header).to_contain_text("Acme Holdings")
    expect(header).to_contain_text("member")
    switcher = page.get_by_label("Workspace", exact=True)
    expect(switcher.locator("optgroup")).to_have_attribute("label", "Acme Holdings")
    switcher.select_option(label="Acme Labs (admin)")
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url(f"**/workspaces/{second}/api-access")
    expect(page.locator("header")).to_contain_text("Acme Labs")
    expect(page.get_by_role("button", name="Generate key")).to_be_visible()  # admin here, member there
    check_accessibility(page, "panel-switched")
    screenshot(page, "panel-switched")
    assert keys.list_keys(site.database, operator, second) == []


def test_hooks_and_their_latest_deliveries(context: BrowserContext, site: Site) -> None:
    key = site.make.workspace_key(name="Hook maker", scopes=["links:read", "links:write", "hooks:write"])
    auth = {"Authorization": f"Bearer {key.plaintext}"}
    api = f"{site.base_url}/v1/workspaces/{site.team.account_id}"
    with receiver() as target:
        body = {"event": "link.created", "target_url": target.url + "?token=partner-secret"}
        made = httpx.post(f"{api}/hooks", headers=auth, json=body)
        assert made.status_code == 201, made.text
        hook_id = made.json()["id"]
        assert (
            httpx.post(f"{api}/links", headers=auth, json={"destination": "https://example.com/a"}).status_code == 201
        )
        target.wait_for(1)
        deadline = time.monotonic() + 20
        while not (shown := webhook_overview.hooks_of(site.database, Actor.operator(), site.team.account_id)) or not [
            item for item in shown if item.hook.id == hook_id and item.recent
        ]:
            assert time.monotonic() < deadline, "the delivery was not recorded"
            time.sleep(0.05)
    page = context.new_page()
    sign_in(page, "viewer@acme.example")
    row = page.locator(f"#hook-{hook_id}")
    expect(row).to_contain_text("link.created")
    expect(row).to_contain_text(f"http://127.0.0.1:{target.port}")
    expect(row).to_contain_text("Key “Hook maker”")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text("HTTP 204")
    assert "partner-secret" not in page.content() and "/hooks/in" not in page.content()
    check_accessibility(page, "panel-hooks")
    row.scroll_into_view_if_needed()
    row.screenshot(path=str(screenshot(page, "panel-hooks", full_page=False)))
