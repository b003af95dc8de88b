"""A revocation or disconnect made through one instance is refused by both within a second, under load.

50 requests a second go to instance A (and 20 to B) with one credential; it is ended through B's admin JSON API with a
signed-in admin session. No request started more than one second after the answer may succeed, on either instance.
The test waits for counts of requests, never for a fixed time, so a busy machine makes it slower, not flaky.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import update

from tests.connect import connect, register
from tests.makers import Keys
from tests.scale.instances import Answer, Instances, Load, admin_client, metric
from tests.support import CHEAP_HASHING, Team
from token_broker import credentials
from token_broker.credentials import SecretHasher
from token_broker.store.database import Database
from token_broker.store.models import Credential

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
CONTRACT_SECONDS = 1.0


def wait_until(condition: Callable[[], bool], seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the load did not get that far"
        time.sleep(0.05)


def run_and_end(instances: Instances, secret: str, end: tuple[str, str]) -> tuple[list[Answer], float, float]:
    """Load both instances, end the credential through B once 30 requests were answered, and keep loading until 40
    requests were sent more than the contract's second after B's answer. Counts, not sleeps: a busy machine only
    makes the test longer."""
    headers = {"Authorization": f"Bearer {secret}"}
    with admin_client(instances.b) as (admin, csrf):
        loads = [Load(instances.a, headers, 50, limit=120).start(), Load(instances.b, headers, 20, limit=120).start()]
        wait_until(lambda: sum(len(load.answers) for load in loads) >= 30)
        asked = time.monotonic()
        response = admin.post(end[0], headers=csrf)
        answered = time.monotonic()
        assert response.status_code == 200, response.text
        assert response.json()["status"] == end[1]
        wait_until(
            lambda: sum(a.started > answered + CONTRACT_SECONDS for load in loads for a in list(load.answers)) >= 40
        )
        answers = [answer for load in loads for answer in load.stop()]
    return answers, asked, answered


def check(answers: list[Answer], asked: float, answered: float, refusal: str) -> None:
    before = [answer for answer in answers if answer.finished < asked]  # answered before the change was asked for
    late = [answer for answer in answers if answer.started > answered + CONTRACT_SECONDS]
    assert len(before) >= 20 and all(answer.status == 200 for answer in before)  # it worked, at rate, before
    assert len(late) >= 40
    assert [answer for answer in late if answer.status == 200] == []
    assert {(answer.status, answer.error) for answer in late} == {(401, refusal)}
    refused_at = min(answer.started for answer in answers if answer.status == 401)
    print(f"first refusal {1000 * (refused_at - answered):.0f} ms after the answer")


def test_a_key_revoked_through_b_is_refused_by_both(instances: Instances, pg_database: Database, pg_team: Team) -> None:
    issued = Keys(pg_database, SecretHasher(CHEAP_HASHING), pg_team).workspace_key(rate_limits=["100000/minute"])
    path = f"/api/workspaces/{pg_team.account_id}/keys/{issued.view.id}/revoke"
    answers, asked, answered = run_and_end(instances, issued.plaintext, (path, "revoked"))
    check(answers, asked, answered, "invalid_api_key")
    for base in (instances.a, instances.b):
        assert metric(base, "token_broker_change_listener_up") == 1.0


def test_a_connection_disconnected_through_b_is_refused_by_both(
    instances: Instances, pg_database: Database, pg_team: Team
) -> None:
    platform = register(pg_database, "zapier")
    tokens = connect(instances.a, platform, pg_team.account_id)
    public_id = credentials.parse(tokens["access_token"]).public_id
    with pg_database.write() as session:  # partner tokens get the default 60/minute: room for the load
        session.execute(
            update(Credential).where(Credential.public_id == public_id).values(rate_limits=["100000/minute"])
        )
    with admin_client(instances.b) as (admin, _):
        [connection] = admin.get(f"/api/workspaces/{pg_team.account_id}/connections").json()["data"]
    path = f"/api/workspaces/{pg_team.account_id}/connections/{connection['id']}/disconnect"
    answers, asked, answered = run_and_end(instances, tokens["access_token"], (path, "disconnected"))
    check(answers, asked, answered, "reconnect_required")
