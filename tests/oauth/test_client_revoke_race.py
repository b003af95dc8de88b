"""A client revoked while one of its codes is being exchanged leaves no live connection behind: either the exchange
commits first and the revocation ends its connection, or the exchange sees the revocation and is refused."""

from __future__ import annotations

import secrets
import threading

import httpx
from sqlalchemy import select

from tests.connect import CALLBACKS, Platform, exchange, register
from tests.live import LiveServer
from tests.support import Team
from token_broker.services import client_lifecycle, tokens
from token_broker.services.actors import Actor
from token_broker.store.database import Database
from token_broker.store.models import User, Workspace
from token_broker.store.oauth_models import Connection, OAuthClient

ROUNDS = 8


def plant_code(database: Database, platform: Platform, account_id: str) -> str:
    """A code as an approved consent makes it (the consent page is not what this test is about)."""
    code = secrets.token_urlsafe(32)
    with database.write() as session:
        client = session.scalars(select(OAuthClient).where(OAuthClient.client_id == platform.client_id)).one()
        workspace = session.scalars(select(Workspace).where(Workspace.account_id == account_id)).one()
        admin = session.scalars(select(User).where(User.email == "admin@acme.example")).one()
        tokens.issue_code(session, code, client, workspace.id, admin.id, CALLBACKS["n8n"], "links:read",
                          platform.challenge, "S256")  # fmt: skip
    return code


def revoke_while_redeeming(live: LiveServer, platform: Platform, code: str) -> httpx.Response:
    """The code's exchange and the client's revocation, released together."""
    start = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def redeem() -> None:
        start.wait()
        answers.append(exchange(live.base_url, platform, code))

    racer = threading.Thread(target=redeem)
    racer.start()
    start.wait()
    client_lifecycle.revoke_client(live.resources.database, Actor.operator(), platform.client_id)
    racer.join(timeout=60)
    [answer] = answers
    return answer


def test_no_connection_outlives_its_clients_revocation(live: LiveServer, team: Team) -> None:
    database = live.resources.database
    outcomes: list[int] = []
    for _ in range(ROUNDS):
        platform = register(database, "n8n", team.account_id, team.admin)
        code = plant_code(database, platform, team.account_id)
        answer = revoke_while_redeeming(live, platform, code)
        assert answer.status_code in (200, 400), answer.text
        outcomes.append(answer.status_code)
        with database.read() as session:
            statuses = session.scalars(
                select(Connection.status)
                .join(OAuthClient, OAuthClient.id == Connection.client_id)
                .where(OAuthClient.client_id == platform.client_id)
            ).all()
        if answer.status_code == 200:
            assert statuses == ["disconnected"]
            looked = httpx.get(f"{live.base_url}/v1/me",
                               headers={"Authorization": f"Bearer {answer.json()['access_token']}"})  # fmt: skip
            assert looked.status_code == 401 and looked.json()["error"] == "reconnect_required"
        else:
            assert answer.json()["error"] == "invalid_grant" and statuses == []
    assert len(outcomes) == ROUNDS
