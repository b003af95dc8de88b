"""The authorize endpoint refuses what it must (RFC 6749 4.1.2.1, RFC 7636, RFC 9700), redirecting only to a
registered redirect URI of a known client, always with state and iss."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from tests.browser_forms import hidden_inputs, sign_in
from tests.connect import approve, authorize_params, redirect_query, register
from tests.live import LiveServer
from tests.support import PASSWORD, Team


@pytest.fixture
def browser(live: LiveServer, team: Team) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base_url, timeout=30) as client:
        assert sign_in(client, "admin@acme.example", PASSWORD).status_code == 303
        yield client


def test_not_signed_in_goes_to_login_and_back(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    with httpx.Client(base_url=live.base_url) as anonymous:
        answer = anonymous.get("/oauth/authorize", params=authorize_params(platform))
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=%2Foauth%2Fauthorize")
        back = sign_in(
            anonymous, "admin@acme.example", PASSWORD, next_path=answer.headers["location"][len("/login?next=") :]
        )
        assert back.status_code == 303


def test_the_consent_page(live: LiveServer, team: Team, browser: httpx.Client) -> None:
    platform = register(live.resources.database, "zapier")
    page = browser.get("/oauth/authorize", params=authorize_params(platform))
    assert page.status_code == 200
    assert "Connect Zapier" in page.text and "see your short links" in page.text
    fields = hidden_inputs(page.text, "/oauth/authorize")
    assert {"csrf_token", "client_id", "redirect_uri", "state", "response_type", "code_challenge"} <= set(fields)
    assert 'name="decision" value="approve"' in page.text and 'name="decision" value="deny"' in page.text
    assert f'<option value="{team.account_id}">' in page.text and team.other_account_id not in page.text
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
    assert "https://zapier.com" in page.headers["content-security-policy"]  # the consent form may post on to it


def test_deny_redirects_access_denied_with_state_and_iss(live: LiveServer, team: Team, browser: httpx.Client) -> None:
    platform = register(live.resources.database, "make")
    answer = approve(browser, authorize_params(platform), team.account_id, decision="deny")
    assert answer.status_code == 303 and answer.headers["location"].startswith(platform.redirect_uri)
    query = redirect_query(answer)
    assert (query["error"], query["state"], query["iss"]) == ("access_denied", "st-123", live.base_url)
    assert "code" not in query


@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uri": "https://evil.example/callback"},
        {"redirect_uri": "https://zapier.com/dashboard/auth/oauth/return/App123CLIAPI/extra"},
        {"redirect_uri": "https://zapier.com/dashboard/auth/oauth/return/App123CLIAPI/?x=1"},
        {"redirect_uri": ""},
        {"client_id": "zapier_unknownclient0000"},
        {"client_id": ""},
        {"redirect_uri": 'https://evil.example/"x'},
        {"redirect_uri": "https://évil.example/"},
        {"response_type": 't"k'},
        {"state": "\x00"},
    ],
)
def test_bad_client_or_redirect_uri_is_never_redirected_to(
    live: LiveServer, team: Team, browser: httpx.Client, change: dict[str, str]
) -> None:
    platform = register(live.resources.database, "zapier")
    answer = browser.get("/oauth/authorize", params=authorize_params(platform) | change)
    assert answer.status_code == 400, answer.text
    assert "location" not in answer.headers
    assert "cannot continue" in answer.text


def test_a_repeated_parameter_is_refused(live: LiveServer, team: Team, browser: httpx.Client) -> None:
    platform = register(live.resources.database, "zapier")
    params = [*authorize_params(platform).items(), ("redirect_uri", "https://evil.example/cb")]
    answer = browser.get("/oauth/authorize", params=params)
    assert answer.status_code == 400 and "location" not in answer.headers


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),  # no method means plain under RFC 7636
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "admin:everything"}, "invalid_scope"),
        ({"scope": "links:read hooks:write analytics:read links:write bogus"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_errors_after_the_redirect_uri_is_trusted_go_back_to_the_platform(
    live: LiveServer, team: Team, browser: httpx.Client, change: dict[str, str], error: str
) -> None:
    platform = register(live.resources.database, "zapier")
    params = authorize_params(platform) | change
    answer = browser.get("/oauth/authorize", params={k: v for k, v in params.items() if v != ""} | (
        {"code_challenge_method": ""} if change.get("code_challenge_method") == "" else {}))  # fmt: skip
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"].startswith(platform.redirect_uri)
    query = redirect_query(answer)
    assert query["error"] == error and query["state"] == "st-123" and query["iss"] == live.base_url


def test_scope_outside_the_manifest_is_refused(
    live: LiveServer, team: Team, browser: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = register(live.resources.database, "zapier")
    manifest = live.resources.manifests["zapier"]
    # Every platform's manifest now reaches all four scopes (Zapier's click trigger needs analytics:read), so the
    # running server is given a narrower Zapier manifest: one without the click trigger.
    narrower = replace(manifest, scopes=tuple(s for s in manifest.scopes if s != "analytics:read"), events=())
    monkeypatch.setitem(live.resources.manifests, "zapier", narrower)
    answer = browser.get("/oauth/authorize", params=authorize_params(platform, scope="analytics:read"))
    assert redirect_query(answer)["error"] == "invalid_scope"


def test_only_owners_and_admins_can_approve(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    with httpx.Client(base_url=live.base_url) as member:
        sign_in(member, "member@acme.example", PASSWORD)
        page = member.get("/oauth/authorize", params=authorize_params(platform))
        assert page.status_code == 403 and "owner or admin" in page.text
    with httpx.Client(base_url=live.base_url) as admin:
        sign_in(admin, "admin@acme.example", PASSWORD)
        page = admin.get("/oauth/authorize", params=authorize_params(platform))
        fields = hidden_inputs(page.text, "/oauth/authorize")
        forged = admin.post(
            "/oauth/authorize", data={**fields, "account_id": team.other_account_id, "decision": "approve"}
        )
        assert forged.status_code == 403 and "location" not in forged.headers
        no_csrf = admin.post("/oauth/authorize", data={**fields, "csrf_token": "x", "account_id": team.account_id,
                                                       "decision": "approve"})  # fmt: skip
        assert no_csrf.status_code == 403
