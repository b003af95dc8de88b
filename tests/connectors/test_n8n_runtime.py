"""The n8n package inside the real n8n (tests/connectors/n8n_runtime.py), against a live broker behind a recording
proxy: n8n loads the package as a community package; its OAuth2 credential connects through n8n's own flow (PKCE,
the broker's sign-in and consent, n8n's callback); the action node runs every operation; with a short access-token
lifetime n8n refreshes after the 401 and carries on; the trigger survives a disconnect (activate, disconnect,
deactivate, reconnect, reactivate, and a new link starts an execution); and after a disconnect n8n tells its user the
credential "needs to be reconnected". Every request n8n made falls inside the manifest. n8n starts once."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import select

from tests.connect import Platform
from tests.connectors.live_support import Broker, RecordingProxy, requires_oauth
from tests.connectors.n8n_runtime import N8n, error_of, output_of, running_n8n, wait_for
from tests.live import live_server
from tests.servers import free_port
from tests.support import make_team
from token_broker.credentials import SecretHasher
from token_broker.services import clients
from token_broker.store.database import Database
from token_broker.store.hook_models import Hook
from token_broker.store.oauth_models import Connection

pytestmark = requires_oauth
ACCESS_SECONDS = 5  # n8n's tokens expire quickly here, so the suite sees n8n refresh after a 401
NIM = "n8n-nodes-nim.nim"
NIM_TRIGGER = "n8n-nodes-nim.nimTrigger"


@dataclass
class World:
    broker: Broker
    proxy: RecordingProxy
    n8n: N8n
    client: Platform
    credential: dict[str, str]


@pytest.fixture(scope="module")
def world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory, hasher: SecretHasher) -> Iterator[World]:
    work = tmp_path_factory.mktemp("n8n-runtime")
    shutil.copyfile(sqlite_template, work / "store.db")
    url = f"sqlite:///{work / 'store.db'}"
    database = Database(url)
    team = make_team(database, hasher)
    lifetimes = (("zapier", 3600), ("make", 3600), ("n8n", ACCESS_SECONDS))
    port = free_port()
    callback = f"http://127.0.0.1:{port}/rest/oauth2-credential/callback"
    made = clients.register_client(database, team.admin, "n8n", [callback], account_id=team.account_id)
    client = Platform("n8n", made.client_id, made.client_secret, callback)
    try:
        with (
            live_server(url, webhook_allow_hosts=("127.0.0.1",), access_token_seconds=lifetimes) as server,
            RecordingProxy(server.base_url) as proxy,
            running_n8n(work, port) as n8n,
        ):
            broker = Broker(server=server, database=database, team=team)
            data = {"baseUrl": proxy.url, "clientId": client.client_id, "clientSecret": client.client_secret}
            credential = n8n.create_credential("Nim", "nimOAuth2Api", data)
            yield World(broker, proxy, n8n, client, credential)
    finally:
        database.dispose()


def connect(world: World) -> None:
    """What the user does in n8n's credential dialog: Connect, sign in to Nim and approve, back to n8n."""
    url = world.n8n.authorize_url(world.credential["id"])
    asked = dict(parse_qsl(urlsplit(url).query))
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43, url
    assert asked["redirect_uri"] == world.client.redirect_uri
    query = world.broker.consent(url, world.proxy.url)
    answer = world.n8n.callback(query)
    assert answer.status_code == 200, answer.text[:2000]
    assert "Connection successful" in answer.text, answer.text[:2000]  # n8n's oauth-callback page, not its error page


def active_connections(broker: Broker) -> list[str]:
    with broker.database.read() as session:
        rows = session.scalars(
            select(Connection.public_id).where(Connection.platform == "n8n", Connection.status == "active")
        )
        return list(rows)


def hooks_to(broker: Broker, base_url: str) -> list[tuple[str, str, int | None]]:
    """(id, status, connection) of every hook whose target is this n8n, oldest first."""
    with broker.database.read() as session:
        rows = session.execute(
            select(Hook.public_id, Hook.status, Hook.connection_id)
            .where(Hook.target_url.startswith(base_url))
            .order_by(Hook.id)
        )
        return [(row[0], row[1], row[2]) for row in rows]


def saved_hook(n8n: N8n, workflow_id: str) -> str | None:
    """The hook id the trigger saved in the workflow's static data, if any."""
    static = n8n.workflow(workflow_id).get("staticData") or {}
    hook_id = static.get("node:Nim Trigger", {}).get("hookId")
    return hook_id if isinstance(hook_id, str) else None


def action(world: World, name: str, **parameters: Any) -> dict[str, Any]:
    """A workflow: a manual trigger, then the Nim node with these parameters and the OAuth2 credential."""
    nodes = [
        {
            "id": str(uuid.uuid4()),
            "name": "Start",
            "type": "n8n-nodes-base.manualTrigger",
            "typeVersion": 1,
            "position": [0, 0],
            "parameters": {},
        },
        {
            "id": str(uuid.uuid4()),
            "name": "Nim",
            "type": NIM,
            "typeVersion": 1,
            "position": [220, 0],
            "parameters": {"authentication": "oAuth2", **parameters},
            "credentials": {"nimOAuth2Api": world.credential},
        },
    ]
    connections = {"Start": {"main": [[{"node": "Nim", "type": "main", "index": 0}]]}}
    return world.n8n.create_workflow(name, nodes, connections)


def run_action(world: World, name: str, **parameters: Any) -> dict[str, Any]:
    workflow = action(world, name, **parameters)
    return world.n8n.run(workflow["id"], "Start")


def test_n8n_loads_the_package_as_a_community_package(world: World) -> None:
    assert {NIM, NIM_TRIGGER} <= world.n8n.node_types()


def test_connect_run_every_operation_and_refresh(world: World) -> None:
    connect(world)
    assert len(active_connections(world.broker)) == 1

    [link] = output_of(
        run_action(
            world, "create", resource="link", operation="create", destination="https://example.com/n8n", slug="n8n-rt"
        ),
        "Nim",
    )
    assert link["slug"] == "n8n-rt"
    [got] = output_of(run_action(world, "get", resource="link", operation="get", linkId=link["id"]), "Nim")
    assert got["id"] == link["id"]
    listed = output_of(run_action(world, "list", resource="link", operation="list", returnAll=True), "Nim")
    assert link["id"] in [item["id"] for item in listed]
    change = {"updateFields": {"destination": "https://example.com/n8n-2"}}
    [updated] = output_of(
        run_action(world, "update", resource="link", operation="update", linkId=link["id"], **change), "Nim"
    )
    assert updated["destination"] == "https://example.com/n8n-2"
    [analytics] = output_of(
        run_action(world, "analytics", resource="analytics", operation="get", linkId=link["id"], days=7), "Nim"
    )
    assert len(analytics["days"]) == 7

    # The access token lives ACCESS_SECONDS: once it has surely expired, n8n's next call gets 401, refreshes and
    # carries on. The proxy saw the code exchange and at least one refresh.
    time.sleep(ACCESS_SECONDS + 1)
    exchanges_before = token_requests(world)
    [deleted] = output_of(run_action(world, "delete", resource="link", operation="delete", linkId=link["id"]), "Nim")
    assert deleted == {"deleted": True, "id": link["id"]}
    assert token_requests(world) > exchanges_before >= 1
    assert len(active_connections(world.broker)) == 1  # refreshing kept the one connection


def token_requests(world: World) -> int:
    return sum(1 for request in world.proxy.requests if request.method == "POST" and request.path == "/oauth/token")


def test_the_trigger_survives_a_disconnect(world: World) -> None:
    n8n, broker = world.n8n, world.broker
    if not active_connections(broker):
        connect(world)
    webhook_id = str(uuid.uuid4())
    trigger = {
        "id": str(uuid.uuid4()),
        "name": "Nim Trigger",
        "type": NIM_TRIGGER,
        "typeVersion": 1,
        "position": [0, 0],
        "webhookId": webhook_id,
        "parameters": {"authentication": "oAuth2", "event": "link.created"},
        "credentials": {"nimOAuth2Api": world.credential},
    }
    workflow = n8n.create_workflow("on new links", [trigger], {})
    workflow_id = workflow["id"]

    # Activate: the trigger registers its hook in Nim (n8n publishes a workflow in the background: wait for it).
    n8n.activate(workflow_id)
    first_hook = wait_for("the hook's registration", lambda: saved_hook(n8n, workflow_id), 60, n8n.log)
    [(hook_id, status, first_owner)] = hooks_to(broker, n8n.base_url)
    assert (hook_id, status) == (first_hook, "active")

    # An admin disconnects the connection: Nim disables its hooks at once. Deactivating in n8n cannot reach Nim,
    # still succeeds, and forgets the hook.
    [connection] = active_connections(broker)
    broker.disconnect(connection)
    assert hooks_to(broker, n8n.base_url) == [(first_hook, "disabled", first_owner)]
    n8n.deactivate(workflow_id)
    wait_for("the trigger to forget its hook", lambda: True if not saved_hook(n8n, workflow_id) else None, 60, n8n.log)
    assert not n8n.workflow(workflow_id)["active"]

    # Reconnect and reactivate: the trigger asks Nim, finds no live hook of its own, and registers a new one.
    connect(world)
    n8n.activate(workflow_id)
    second_hook = wait_for("a new hook", lambda: saved_hook(n8n, workflow_id), 60, n8n.log)
    hooks = hooks_to(broker, n8n.base_url)
    assert [hook[0] for hook in hooks] == [first_hook, second_hook], hooks
    assert hooks[0][1] in ("disabled", "deleted") and hooks[1][1] == "active" and hooks[1][2] != first_owner, hooks

    # A new link starts an execution of the workflow with that link.
    before = len(n8n.executions(workflow_id))
    [link] = output_of(
        run_action(world, "create after reconnect", resource="link", operation="create", destination="https://e.x/a"),
        "Nim",
    )

    def executed() -> list[dict[str, Any]] | None:
        found = n8n.executions(workflow_id)
        return found if len(found) > before else None

    newest = max(wait_for("the trigger's execution", executed, 60, n8n.log), key=lambda item: int(item["id"]))
    [event] = output_of(n8n.finished(str(newest["id"])), "Nim Trigger")
    assert event["type"] == "link.created" and event["data"]["link"]["id"] == link["id"]

    # Deactivating while connected removes the hook in Nim.
    n8n.deactivate(workflow_id)
    wait_for("the hook's removal", lambda: True if not saved_hook(n8n, workflow_id) else None, 60, n8n.log)
    assert hooks_to(broker, n8n.base_url)[1] == (second_hook, "deleted", hooks[1][2])


def test_after_a_disconnect_n8n_asks_to_reconnect(world: World) -> None:
    if not active_connections(world.broker):
        connect(world)
    for connection in active_connections(world.broker):
        world.broker.disconnect(connection)

    # Servers have a second to learn of a disconnect: run until a run fails (each run takes longer than that).
    def refused() -> dict[str, Any] | None:
        run = run_action(world, "after disconnect", resource="link", operation="list", returnAll=True)
        return run if "error" in run["data"]["resultData"] else None

    failed = wait_for("a run to be refused", refused, 60, world.n8n.log)
    assert "needs to be reconnected" in error_of(failed), error_of(failed)
    world.proxy.assert_within_manifest("n8n")
