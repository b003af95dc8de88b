"""Ending a connection (or revoking a key) stops its webhooks in the same transaction: with 1,000 events queued, no
delivery can be claimed after the answer, the token is dead on the next request and the refresh is refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from tests.connect import connect, refresh, register
from tests.live import LiveServer, live_server
from tests.support import Team
from token_broker.services import connections, deliveries, keys, verification, webhook_subscriptions
from token_broker.services.keys import KeyRequest
from token_broker.services.outbox import add_event
from token_broker.store.hook_models import Hook, WebhookDelivery
from token_broker.store.models import Workspace, utcnow

TARGET = "http://127.0.0.1:9/hooks"  # discard port: nothing is delivered in this test


@pytest.fixture
def live(database_url: str) -> Iterator[LiveServer]:
    """A server whose own delivery worker is off, so that the test alone decides what is fanned out and claimed."""
    with live_server(database_url, webhook_worker=False) as server:
        yield server


def queue_events(live: LiveServer, account_id: str, count: int) -> int:
    with live.resources.database.write() as session:
        workspace = session.scalars(select(Workspace).where(Workspace.account_id == account_id)).one()
        for index in range(count):
            add_event(session, workspace, "link.created", {"link": {"id": f"lnk_{index:016d}"}})
    fanned = 0
    while made := deliveries.fan_out(live.resources.database, utcnow(), limit=500):
        fanned += made
    return fanned


def open_deliveries(live: LiveServer) -> int:
    with live.resources.database.read() as session:
        pending = WebhookDelivery.status.in_(("pending", "delivering"))
        return session.scalar(select(func.count()).where(pending)) or 0


def test_disconnect_with_a_thousand_queued_events(live: LiveServer, team: Team) -> None:
    settings = replace(live.resources.settings, webhook_allow_hosts=("127.0.0.1",))
    platform = register(live.resources.database, "zapier")
    tokens = connect(live.base_url, platform, team.account_id)
    credential = verification.verify(live.resources.database, live.resources.hasher, tokens["access_token"])
    webhook_subscriptions.create_hook(live.resources.database, credential, "link.created", TARGET, settings)
    assert queue_events(live, team.account_id, 1000) == 1000
    assert open_deliveries(live) == 1000
    [connection] = connections.list_connections(live.resources.database, team.admin, team.account_id)
    connections.disconnect(live.resources.database, team.admin, connection.id)
    assert open_deliveries(live) == 0
    assert deliveries.claim(live.resources.database, "test-worker", utcnow() + timedelta(days=1), 100,
                            timedelta(seconds=30)) == []  # fmt: skip
    with live.resources.database.read() as session:
        assert session.scalars(select(Hook.end_reason)).all() == ["connection_ended"]
    live.resources.guard.forget(credential.id)
    answer = httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert answer.status_code == 401 and answer.json()["error"] == "reconnect_required"
    assert refresh(live.base_url, platform, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoking_a_key_stops_its_hooks(live: LiveServer, team: Team) -> None:
    settings = replace(live.resources.settings, webhook_allow_hosts=("127.0.0.1",))
    issued = keys.create_key(live.resources.database, live.resources.hasher, team.admin, team.account_id,
                             KeyRequest(name="hooks", scopes=["links:read", "hooks:write"]))  # fmt: skip
    assert issued.plaintext is not None
    credential = verification.verify(live.resources.database, live.resources.hasher, issued.plaintext)
    webhook_subscriptions.create_hook(live.resources.database, credential, "link.created", TARGET, settings)
    assert queue_events(live, team.account_id, 10) == 10
    keys.revoke_key(live.resources.database, team.admin, issued.view.id)
    assert open_deliveries(live) == 0
    with live.resources.database.read() as session:
        assert session.scalars(select(Hook.end_reason)).all() == ["credential_revoked"]
