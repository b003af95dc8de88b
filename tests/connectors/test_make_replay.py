"""The Make app's requests replayed against a live broker. Nothing runs a Make connection outside Make, so this sends
what the IML files declare (URL, method, query, body and its type, with their templates resolved by tests/connectors
/iml.py): the connection's authorize (through sign-in and consent), token, info, refresh and invalidate; every
module; the dedicated webhook's attach and detach around a real delivery, and around a disconnect and a reconnect.
Every request falls inside the manifest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select

from tests.connect import Platform, register
from tests.connectors.connectors import CONNECTORS, load_iml
from tests.connectors.iml import evaluate, resolve
from tests.connectors.live_support import Broker, HookReceiver, RecordingProxy, requires_oauth
from token_broker.store.hook_models import Hook

pytestmark = requires_oauth
MAKE = CONNECTORS / "make"
REQUEST_KEYS = ("url", "method", "headers", "qs", "body", "type")


class MakeApp:
    """The app's files, replayed the way Make sends them, against `base_url` in place of the app's own address."""

    def __init__(self, client: Platform, base_url: str) -> None:
        self.base = load_iml(MAKE / "general" / "base.iml.json")
        self.connection = load_iml(MAKE / "connections" / "nim" / "nim.oauth-communication.iml.json")
        self.public, self.base_url = self.base["baseUrl"], base_url
        self.common = {"clientId": client.client_id, "clientSecret": client.client_secret}
        scope = load_iml(MAKE / "connections" / "nim" / "nim.default-scope.iml.json")
        self.oauth = {"localRedirectUri": client.redirect_uri, "scope": scope}
        self.temp: dict[str, Any] = {}
        self.data: dict[str, Any] = {}

    def context(self, **extra: Any) -> dict[str, Any]:
        return {
            "common": self.common,
            "oauth": self.oauth,
            "temp": self.temp,
            "data": self.data,
            "connection": self.data,
            **extra,
        }

    def url(self, declared: str) -> str:
        absolute = self.public + declared if declared.startswith("/") else declared
        assert absolute.startswith(self.public + "/"), f"{declared} is not on the app's own address"
        return self.base_url + absolute.removeprefix(self.public)

    def send(self, directive: dict[str, Any], context: dict[str, Any], with_base: bool = True) -> httpx.Response:
        request = resolve({key: directive[key] for key in REQUEST_KEYS if key in directive}, context)
        headers = dict(resolve(self.base["headers"], context)) if with_base else {}
        headers |= request.get("headers", {})
        body, kind = request.get("body"), request.get("type", "json")
        content: dict[str, Any] = {}
        if body is not None:
            content = {"data": body} if kind == "urlencoded" else {"json": body}
        return httpx.request(
            request.get("method", "GET"),
            self.url(request["url"]),
            headers=headers,
            params=request.get("qs"),
            timeout=30,
            **content,
        )

    def authorize(self, broker: Broker, proxy_url: str) -> None:
        """What Make runs when the user creates (or reauthorizes) the connection."""
        authorize = self.connection["authorize"]
        self.temp = resolve(authorize["temp"], self.context())
        query = resolve(authorize["qs"], self.context())
        query = broker.consent(self.url(authorize["url"]) + "?" + urlencode(query), proxy_url)
        self.temp |= resolve(authorize["response"]["temp"], self.context(query=query))
        answer = self.send(self.connection["token"], self.context(), with_base=False)
        assert answer.status_code == 200, answer.text
        self.data = resolve(self.connection["token"]["response"]["data"], self.context(body=answer.json()))

    def module(self, name: str, **parameters: Any) -> tuple[httpx.Response, Any]:
        communication = load_iml(MAKE / "modules" / name / f"{name}.communication.iml.json")
        answer = self.send(communication, self.context(parameters=parameters))
        assert answer.status_code < 300, (name, answer.status_code, answer.text)
        body = answer.json() if answer.content else None
        response = communication["response"]
        if "iterate" in response:
            items = evaluate(response["iterate"][2:-2], {"body": body})
            return answer, [resolve(response["output"], {"item": item, "parameters": parameters}) for item in items]
        return answer, resolve(response["output"], self.context(body=body, parameters=parameters))


def hook_status(broker: Broker, hook_id: str) -> str:
    with broker.database.read() as session:
        status = session.scalar(select(Hook.status).where(Hook.public_id == hook_id))
    assert status is not None, hook_id
    return status


def test_make_app_replayed_against_the_live_broker(broker: Broker) -> None:
    client = register(broker.database, "make")
    with RecordingProxy(broker.base_url) as proxy, HookReceiver() as receiver:
        make = MakeApp(client, proxy.url)
        connection = make.connection

        # authorize (temp: the PKCE verifier; the query string; the user's consent), then token: the connection's data.
        make.authorize(broker, proxy.url)
        assert make.data["accountId"] == broker.account_id
        assert make.data["expires"] > datetime.now(UTC) + timedelta(minutes=15)

        # info: the connection's label.
        answer = make.send(connection["info"], make.context(), with_base=False)
        assert answer.status_code == 200, answer.text
        label = {key: connection["info"]["response"][key] for key in ("uid", "metadata")}
        info = resolve(label, make.context(body=answer.json()))
        assert info["metadata"]["value"] == "Acme" and info["uid"] == broker.account_id

        # Modules.
        _, link = make.module("createLink", destination="https://example.com/make", slug="make-live")
        assert link["slug"] == "make-live"
        _, got = make.module("getLink", linkId=link["id"])
        assert got["id"] == link["id"]
        _, updated = make.module("updateLink", linkId=link["id"], slug="make-live-2")
        assert updated["slug"] == "make-live-2" and updated["destination"] == link["destination"]
        _, analytics = make.module("getLinkAnalytics", linkId=link["id"], days=30)
        assert analytics["link_id"] == link["id"] and len(analytics["days"]) == 30
        page, listed = make.module("listLinks", limit=10)
        assert link["id"] in [item["id"] for item in listed]
        pagination = load_iml(MAKE / "modules" / "listLinks" / "listLinks.communication.iml.json")["pagination"]
        assert resolve(pagination["condition"], {"body": page.json()}) is False
        assert resolve(pagination["qs"], {"body": page.json()}) == {"starting_after": page.json()["data"][-1]["id"]}

        # The dedicated webhook: attach, a real event through the instant trigger, detach.
        webhook_dir = MAKE / "webhooks" / "linkEvents"
        attach, detach = (
            load_iml(webhook_dir / "linkEvents.attach.iml.json"),
            load_iml(webhook_dir / "linkEvents.detach.iml.json"),
        )
        webhook = {"url": receiver.url("make")}
        answer = make.send(attach, make.context(parameters={"event": "link.created"}, webhook=webhook))
        assert answer.status_code == 201, answer.text
        webhook |= resolve(attach["response"]["data"], make.context(body=answer.json()))
        secret = answer.json()["secret"]
        _, second = make.module("createLink", destination="https://example.com/make-2")
        delivery = receiver.wait("make", lambda event: event["data"]["link"]["id"] == second["id"])
        delivery.verify(secret)
        incoming = load_iml(webhook_dir / "linkEvents.communication.iml.json")
        trigger = load_iml(MAKE / "modules" / "watchLinkEvents" / "watchLinkEvents.communication.iml.json")
        bundle = resolve(trigger["output"], {"body": resolve(incoming["output"], {"body": delivery.event})})
        assert bundle["type"] == "link.created" and bundle["data"]["link"]["slug"] == second["slug"]
        answer = make.send(detach, make.context(webhook=webhook))
        assert answer.status_code == 204, answer.text

        for made in (link, second):
            _, deleted = make.module("deleteLink", linkId=made["id"])
            assert deleted == {"id": made["id"], "deleted": True}

        # Outside the manifest, Make's token is refused.
        broker.assert_refused_outside("make", make.data["accessToken"])

        # refresh: Make runs it when the condition holds; the new data replaces the old.
        refresh = connection["refresh"]
        assert resolve(refresh["condition"], make.context()) is False
        soon = {**make.data, "expires": datetime.now(UTC) + timedelta(minutes=10)}
        assert resolve(refresh["condition"], make.context(data=soon)) is True
        answer = make.send(refresh, make.context(), with_base=False)
        assert answer.status_code == 200, answer.text
        before = dict(make.data)
        make.data = {**make.data, **resolve(refresh["response"]["data"], make.context(body=answer.json()))}
        assert make.data["accessToken"] != before["accessToken"]
        assert make.data["refreshToken"] not in ("", before["refreshToken"])
        assert make.send(connection["info"], make.context(), with_base=False).status_code == 200

        # A scenario still attached to a webhook when the connection ends (below).
        answer = make.send(attach, make.context(parameters={"event": "link.created"}, webhook={"url": webhook["url"]}))
        assert answer.status_code == 201, answer.text
        left_attached = {"url": webhook["url"], **resolve(attach["response"]["data"], make.context(body=answer.json()))}

        # invalidate (the user deletes the connection in Make): the connection ends in the broker.
        answer = make.send(connection["invalidate"], make.context(), with_base=False)
        assert answer.status_code == 200, answer.text
        assert broker.wait_until_refused(make.data["accessToken"]).status_code == 401
        answer = make.send(connection["info"], make.context(), with_base=False)
        assert answer.status_code == 401 and answer.json()["error"] == "reconnect_required", answer.text
        answer = make.send(refresh, make.context(), with_base=False)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.text

        # The webhook left attached: the broker disabled its hook with the connection, so a detach that can no longer
        # authenticate (401) leaves nothing behind.
        assert hook_status(broker, left_attached["externalHookId"]) == "disabled"
        answer = make.send(detach, make.context(webhook=left_attached))
        assert answer.status_code == 401 and answer.json()["error"] == "reconnect_required", answer.text
        # The user connects again: a new connection, which owns no hook. Attaching (a new webhook in Make) works;
        # the old hook is another connection's, so detaching it with the new one is a 404, never someone's deletion.
        make.authorize(broker, proxy.url)
        answer = make.send(attach, make.context(parameters={"event": "link.created"}, webhook={"url": webhook["url"]}))
        assert answer.status_code == 201, answer.text
        renewed = {"url": webhook["url"], **resolve(attach["response"]["data"], make.context(body=answer.json()))}
        assert hook_status(broker, renewed["externalHookId"]) == "active"
        answer = make.send(detach, make.context(webhook=left_attached))
        assert answer.status_code == 404, answer.text
        assert hook_status(broker, left_attached["externalHookId"]) == "disabled"
        answer = make.send(detach, make.context(webhook=renewed))
        assert answer.status_code == 204, answer.text
        assert hook_status(broker, renewed["externalHookId"]) == "deleted"

    proxy.assert_within_manifest("make")
