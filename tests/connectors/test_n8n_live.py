"""The n8n package against a live broker, run as n8n runs it (connectors/n8n/test/harness.js): the OAuth2 credential
through @n8n/client-oauth2 in its PKCE, header and body styles, code exchange and refresh; the Nim node's operations
and the trigger's hook registration with the resulting token; a real delivery through the trigger's signature check;
and after an admin disconnects, a 401 on the API and invalid_grant on refresh. Every request falls inside the
manifest."""

from __future__ import annotations

import secrets
import subprocess
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.connect import Platform, register
from tests.connectors.connectors import CONNECTORS
from tests.connectors.live_support import Broker, HookReceiver, RecordingProxy, node_step, requires_oauth

pytestmark = requires_oauth
N8N = CONNECTORS / "n8n"


@pytest.fixture(scope="module")
def built() -> None:
    """The package compiled from its current sources (a stale dist/ would test old code)."""
    if not (N8N / "node_modules").is_dir():
        pytest.fail(f"{N8N} has no node_modules: run `npm ci --ignore-scripts` there first (scripts/test does)")
    result = subprocess.run(["npm", "run", "build"], cwd=N8N, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


class N8n:
    def __init__(self, client: Platform, base_url: str) -> None:
        self.client, self.base_url = client, base_url

    def credential(self, style: str) -> dict[str, str]:
        return {
            "baseUrl": self.base_url,
            "clientId": self.client.client_id,
            "clientSecret": self.client.client_secret,
            "style": style,
        }

    def run(self, action: str, **step: Any) -> dict[str, Any]:
        return node_step(N8N, "test/run.js", {"action": action, **step}, {})

    def ok(self, action: str, **step: Any) -> Any:
        answer = self.run(action, **step)
        assert answer["ok"], f"{action}: {answer['error']}"
        return answer["result"]

    def setup(self, token: dict[str, Any], **parameters: Any) -> dict[str, Any]:
        return {
            "parameters": {"authentication": "oAuth2", **parameters},
            "credentialType": "nimOAuth2Api",
            "credentials": {"baseUrl": self.base_url, "oauthTokenData": token},
        }


def connect(broker: Broker, n8n: N8n, style: str) -> dict[str, Any]:
    state = secrets.token_urlsafe(16)
    started = n8n.ok("authorize", credential=n8n.credential(style), redirectUri=n8n.client.redirect_uri, state=state)
    query = broker.consent(started["url"], n8n.base_url)
    assert query["state"] == state
    callback = {"redirectUri": n8n.client.redirect_uri, "callbackQuery": urlencode(query)}
    token: dict[str, Any] = n8n.ok(
        "exchange", credential=n8n.credential(style), codeVerifier=started.get("codeVerifier"), **callback
    )
    assert token["account_id"] == broker.account_id and token["token_type"] == "Bearer"
    return token


@pytest.mark.usefixtures("built")
def test_n8n_package_against_the_live_broker(broker: Broker) -> None:
    client = register(broker.database, "n8n", broker.account_id, broker.team.admin)
    with RecordingProxy(broker.base_url) as proxy, HookReceiver() as receiver:
        n8n = N8n(client, proxy.url)
        tokens = {style: connect(broker, n8n, style) for style in ("pkce", "header", "body")}
        token = tokens["pkce"]

        # The action node, with the PKCE credential's token.
        [link] = n8n.ok(
            "execute",
            setup=n8n.setup(
                token, resource="link", operation="create", destination="https://example.com/n8n", slug="n8n-live"
            ),
        )
        assert link["slug"] == "n8n-live"
        [got] = n8n.ok("execute", setup=n8n.setup(token, resource="link", operation="get", linkId=link["id"]))
        assert got["id"] == link["id"]
        listed = n8n.ok("execute", setup=n8n.setup(token, resource="link", operation="list", returnAll=True))
        assert link["id"] in [item["id"] for item in listed]

        # The trigger registers its hook; a change to the link is delivered and passes its signature check.
        webhook_url = receiver.url("n8n")
        trigger = {**n8n.setup(token, event="link.updated"), "webhookUrl": webhook_url}
        assert n8n.ok("hook", method="checkExists", setup=trigger)["result"] is False
        created = n8n.ok("hook", method="create", setup=trigger)
        static = created["staticData"]
        assert static["hookId"].startswith("hook_") and static["secret"].startswith("whsec_")
        assert n8n.ok("hook", method="checkExists", setup={**trigger, "staticData": static})["result"] is True
        change = {"linkId": link["id"], "updateFields": {"destination": "https://example.com/n8n-2"}}
        [updated] = n8n.ok("execute", setup=n8n.setup(token, resource="link", operation="update", **change))
        delivery = receiver.wait("n8n", lambda event: event["type"] == "link.updated")
        delivery.verify(static["secret"])
        wire = {"headers": delivery.headers, "body": delivery.body.decode()}
        received = n8n.ok("webhook", setup={**trigger, "staticData": static}, delivery=wire)
        [[item]] = received["result"]["workflowData"]
        assert item["json"]["data"]["link"]["destination"] == updated["destination"]
        forged = {**wire, "body": wire["body"].replace("n8n-2", "n8n-3")}
        assert n8n.ok("webhook", setup={**trigger, "staticData": static}, delivery=forged)["responded"]["status"] == 401
        removed = n8n.ok("hook", method="delete", setup={**trigger, "staticData": static})
        assert removed["result"] is True and removed["staticData"] == {}

        [analytics] = n8n.ok(
            "execute", setup=n8n.setup(token, resource="analytics", operation="get", linkId=link["id"], days=7)
        )
        assert len(analytics["days"]) == 7
        assert n8n.ok("execute", setup=n8n.setup(token, resource="link", operation="delete", linkId=link["id"])) == [
            {"deleted": True, "id": link["id"]}
        ]

        # Outside the manifest, n8n's token is refused.
        broker.assert_refused_outside("n8n", token["access_token"])

        # Refresh in each style; n8n keeps the merged token data.
        for style, data in tokens.items():
            refreshed = n8n.ok("refresh", credential=n8n.credential(style), oauthTokenData=data)
            assert refreshed["access_token"] != data["access_token"], style
            assert refreshed["refresh_token"] != data["refresh_token"], style
            tokens[style] = refreshed
        token = tokens["pkce"]
        assert n8n.ok("execute", setup=n8n.setup(token, resource="link", operation="list", returnAll=True)) == []

        # An admin disconnects the PKCE connection: the API answers 401 and the refresh is invalid_grant.
        broker.disconnect(broker.connection_of(client, token["access_token"]))
        assert broker.wait_until_refused(token["access_token"]).status_code == 401
        failed = n8n.run("execute", setup=n8n.setup(token, resource="link", operation="list", returnAll=True))
        assert not failed["ok"] and str(failed["error"]["status"]) == "401", failed
        assert failed["error"]["body"]["error"] == "reconnect_required", failed
        refused = n8n.run("refresh", credential=n8n.credential("pkce"), oauthTokenData=token)
        assert not refused["ok"] and refused["error"]["body"]["error"] == "invalid_grant", refused
        # The other connections are untouched.
        assert (
            n8n.ok("execute", setup=n8n.setup(tokens["body"], resource="link", operation="list", returnAll=True)) == []
        )

    proxy.assert_within_manifest("n8n")
