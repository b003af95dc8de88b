"""The Zapier app's own functions, run by zapier-platform-core's createAppTester (connectors/zapier/test/invoke.js),
against a live broker: authorize URL, sign-in and consent, getAccessToken, test and the connection label, REST hooks
with a real event delivered and unsubscribed, create and search, refreshAccessToken, and after an admin disconnects,
RefreshAuthError and a refused refresh. Every request the app made falls inside its manifest."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

import httpx
from sqlalchemy import select

from tests.connect import Platform, register
from tests.connectors.connectors import CONNECTORS
from tests.connectors.live_support import Broker, HookReceiver, RecordingProxy, node_step, requires_oauth
from token_broker.store.hook_models import Hook

pytestmark = requires_oauth
ZAPIER = CONNECTORS / "zapier"


class ZapierApp:
    """One Zapier integration, configured as `zapier env:set` would: its client and the broker's URL."""

    def __init__(self, client: Platform, base_url: str) -> None:
        self.env = {
            "NODE_ENV": "test",
            "CLIENT_ID": client.client_id,
            "CLIENT_SECRET": client.client_secret,
            "BASE_URL": base_url,
        }

    def run(self, method: str, bundle: dict[str, Any] | None = None) -> dict[str, Any]:
        return node_step(ZAPIER, "test/invoke.js", {"method": method, "bundle": bundle or {}}, self.env)

    def ok(self, method: str, bundle: dict[str, Any] | None = None) -> Any:
        answer = self.run(method, bundle)
        assert answer["ok"], f"{method}: {answer['error']}"
        return answer["result"]


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def zapier_headers(delivery_headers: dict[str, str]) -> dict[str, str]:
    """How Zapier hands a hook's headers to `perform` in bundle.rawRequest."""
    return {
        "Http-" + "-".join(part.capitalize() for part in name.split("-")): value
        for name, value in delivery_headers.items()
    }


def hook_status(broker: Broker, hook_id: str) -> str:
    with broker.database.read() as session:
        status = session.scalar(select(Hook.status).where(Hook.public_id == hook_id))
    assert status is not None, hook_id
    return status


def reconnect(app: ZapierApp, broker: Broker, client: Platform) -> dict[str, Any]:
    """The user connects again: authorize with PKCE, consent, code exchange."""
    state, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(64)
    url = app.ok(
        "authentication.oauth2Config.authorizeUrl", {"inputData": {"state": state, "redirect_uri": client.redirect_uri}}
    )
    scope = app.ok("authentication.oauth2Config.scope")
    url += "&" + str(
        httpx.QueryParams({"scope": scope, "code_challenge": s256(verifier), "code_challenge_method": "S256"})
    )
    query = broker.consent(url, app.env["BASE_URL"])
    exchange = {"code": query["code"], "redirect_uri": client.redirect_uri, "code_verifier": verifier}
    tokens: dict[str, Any] = app.ok("authentication.oauth2Config.getAccessToken", {"inputData": exchange})
    return tokens


def test_zapier_app_against_the_live_broker(broker: Broker) -> None:
    client = register(broker.database, "zapier")
    with RecordingProxy(broker.base_url) as proxy, HookReceiver() as receiver:
        app = ZapierApp(client, proxy.url)

        # Connect: Zapier renders authorizeUrl, then adds the scope and (enablePkce) the S256 challenge itself.
        state, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(64)
        url = app.ok(
            "authentication.oauth2Config.authorizeUrl",
            {"inputData": {"state": state, "redirect_uri": client.redirect_uri}},
        )
        scope = app.ok("authentication.oauth2Config.scope")
        pkce = {"scope": scope, "code_challenge": s256(verifier), "code_challenge_method": "S256"}
        url += "&" + str(httpx.QueryParams(pkce))
        query = broker.consent(url, proxy.url)
        assert query["state"] == state and query["iss"] == broker.base_url
        exchange = {
            "code": query["code"],
            "state": state,
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
        }
        tokens = app.ok("authentication.oauth2Config.getAccessToken", {"inputData": exchange})
        assert tokens["account_id"] == broker.account_id and tokens["scope"].split() == scope.split()
        auth = dict(tokens)

        me = app.ok("authentication.test", {"authData": auth})
        assert me["credential"]["platform"] == "zapier" and me["account_id"] == broker.account_id
        assert app.ok("authentication.connectionLabel", {"authData": auth, "inputData": me}) == "Acme"

        # REST hooks: subscribe both triggers, make real events, run perform on what was delivered.
        new_link = app.ok(
            "triggers.new_link.operation.performSubscribe", {"authData": auth, "targetUrl": receiver.url("new_link")}
        )
        clicked = app.ok(
            "triggers.link_clicked.operation.performSubscribe",
            {"authData": auth, "targetUrl": receiver.url("link_clicked")},
        )
        assert new_link["event"] == "link.created" and new_link["secret"].startswith("whsec_")
        wanted = {"destination": "https://example.com/zapier", "slug": "zap-live"}
        link = app.ok("creates.shorten_link.operation.perform", {"authData": auth, "inputData": wanted})
        assert link["slug"] == "zap-live"
        delivery = receiver.wait("new_link", lambda event: event["data"]["link"]["id"] == link["id"])
        delivery.verify(new_link["secret"])
        raw = {"content": delivery.body.decode(), "headers": zapier_headers(delivery.headers)}
        hook_bundle = {"authData": auth, "subscribeData": new_link, "cleanedRequest": delivery.event}
        performed = app.ok("triggers.new_link.operation.perform", {**hook_bundle, "rawRequest": raw})
        assert [item["id"] for item in performed] == [link["id"]]
        forged = {**raw, "content": raw["content"].replace("zap-live", "zap-evil")}
        refused = app.run("triggers.new_link.operation.perform", {**hook_bundle, "rawRequest": forged})
        assert not refused["ok"]

        assert (
            httpx.get(f"{broker.base_url}/r/zap-live", headers={"Referer": "https://news.example/a"}).status_code == 302
        )
        click = receiver.wait("link_clicked", lambda event: event["data"]["link"]["id"] == link["id"])
        click.verify(clicked["secret"])
        [item] = app.ok(
            "triggers.link_clicked.operation.perform",
            {"authData": auth, "subscribeData": clicked, "cleanedRequest": click.event},
        )
        assert item["link_id"] == link["id"] and item["id"] == click.event["id"]

        samples = app.ok("triggers.new_link.operation.performList", {"authData": auth})
        assert link["id"] in [sample["id"] for sample in samples]
        for key, hook in (("new_link", new_link), ("link_clicked", clicked)):
            app.ok(f"triggers.{key}.operation.performUnsubscribe", {"authData": auth, "subscribeData": hook})

        # Search: by slug in any case, and by destination.
        by_slug = app.ok("searches.find_link.operation.perform", {"authData": auth, "inputData": {"slug": "ZAP-LIVE"}})
        assert [found["id"] for found in by_slug] == [link["id"]]
        by_destination = app.ok(
            "searches.find_link.operation.perform",
            {"authData": auth, "inputData": {"destination": link["destination"]}},
        )
        assert link["id"] in [found["id"] for found in by_destination]

        # Outside the manifest, Zapier's token is refused.
        broker.assert_refused_outside("zapier", auth["access_token"])

        # Refresh (with the old access token as Bearer, as the app's beforeRequest adds it), then keep working.
        refreshed = app.ok("authentication.oauth2Config.refreshAccessToken", {"authData": auth})
        assert refreshed["access_token"] != auth["access_token"]
        assert refreshed["refresh_token"] != auth["refresh_token"]
        auth |= refreshed
        assert app.ok("authentication.test", {"authData": auth})["account_id"] == broker.account_id

        # A Zap still on when the admin disconnects: its hook is disabled by the broker, not by Zapier.
        left_on = app.ok(
            "triggers.new_link.operation.performSubscribe", {"authData": auth, "targetUrl": receiver.url("left_on")}
        )

        # An admin disconnects: the next call asks Zapier to refresh, and the refresh is refused.
        broker.disconnect(broker.connection_of(client, auth["access_token"]))
        ended = broker.wait_until_refused(auth["access_token"])
        assert ended.status_code == 401 and ended.json()["error"] == "reconnect_required", ended.text
        after = app.run("authentication.test", {"authData": auth})
        assert not after["ok"] and after["error"]["name"] == "RefreshAuthError", after
        refused_refresh = app.run("authentication.oauth2Config.refreshAccessToken", {"authData": auth})
        assert not refused_refresh["ok"] and "invalid_grant" in refused_refresh["error"]["message"], refused_refresh
        assert "reconnect the integration" in refused_refresh["error"]["message"], refused_refresh
        # Turning that Zap off now cannot reach the broker; the hook is already disabled there.
        gone = app.run("triggers.new_link.operation.performUnsubscribe", {"authData": auth, "subscribeData": left_on})
        assert not gone["ok"] and gone["error"]["name"] == "RefreshAuthError", gone
        assert hook_status(broker, left_on["id"]) == "disabled"

        # Reconnecting is a new connection: turning the Zap on subscribes anew, and the old hook is not its own.
        again = reconnect(app, broker, client)
        renewed = app.ok(
            "triggers.new_link.operation.performSubscribe", {"authData": again, "targetUrl": receiver.url("left_on")}
        )
        assert renewed["id"] != left_on["id"] and hook_status(broker, renewed["id"]) == "active"
        stale = {"authData": again, "subscribeData": left_on}
        assert app.ok("triggers.new_link.operation.performUnsubscribe", stale) == {}
        app.ok("triggers.new_link.operation.performUnsubscribe", {"authData": again, "subscribeData": renewed})
        assert hook_status(broker, renewed["id"]) == "deleted"

    proxy.assert_within_manifest("zapier")
