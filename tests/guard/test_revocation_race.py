"""A revocation is felt on the instance that answered it before the answer leaves.

The attacker's hope: a stolen key is revoked, and requests keep being accepted for a while after the revocation's 200,
because they joined a verification that read the store before the revocation committed (single-flight), or because
the instance learns of its own change only from the 0.25 s poll. The tests race requests against revocations at
production argon2 cost (so that a verification is slow enough to be in flight when the revocation commits), in many
interleavings, on SQLite and PostgreSQL, and assert that no request sent after the 200 is accepted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from tests.browser_forms import sign_in
from tests.connect import connect, refresh, register
from tests.live import LiveServer
from tests.makers import Keys
from tests.support import PASSWORD, Team
from token_broker.config import HashingCost
from token_broker.credentials import SecretHasher
from token_broker.store.database import Database
from token_broker.store.models import utcnow
from token_broker.store.oauth_models import RefreshToken

ROUNDS = 8
SPACING = 0.02
MAX_REQUESTS = 1500
AFTER_REVOKE_SECONDS = 0.6


@dataclass(frozen=True)
class Sent:
    at: float
    status: int


@pytest.fixture(scope="module")
def production_hasher() -> SecretHasher:
    return SecretHasher(HashingCost())  # argon2-cffi's defaults: 3 passes, 64 MiB, 4 lanes


@dataclass(frozen=True)
class Admin:
    cookies: httpx.Cookies
    csrf: str


async def race(
    live: LiveServer, team: Team, key: str, key_id: str, admin: Admin, delay: float
) -> tuple[list[Sent], float]:
    """Callers present the never-verified key while an admin revokes it `delay` s after its verification started;
    returns what each request got and when the revocation's 200 arrived."""
    guard = live.resources.guard
    revoked_at: list[float] = []
    sent: list[Sent] = []

    async def one(client: httpx.AsyncClient) -> None:
        at = time.monotonic()
        answer = await client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
        sent.append(Sent(at, answer.status_code))

    async def callers(client: httpx.AsyncClient) -> None:
        """A new request every SPACING seconds, whether or not earlier ones were answered, so that some arrive while
        a verification that began before the revocation is still running."""
        in_flight: list[asyncio.Task[None]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(in_flight) < MAX_REQUESTS:
            late = revoked_at and time.monotonic() > revoked_at[0] + AFTER_REVOKE_SECONDS
            if late and sum(answer.at > revoked_at[0] for answer in sent) >= 10:
                break
            in_flight.append(asyncio.create_task(one(client)))
            await asyncio.sleep(SPACING)
        await asyncio.gather(*in_flight)

    async def revoker(client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + 30
        while not guard._pending and time.monotonic() < deadline:  # the first verification is in flight
            await asyncio.sleep(0.001)
        await asyncio.sleep(delay)
        answer = await client.post(
            f"/api/workspaces/{team.account_id}/keys/{key_id}/revoke", headers={"X-CSRF-Token": admin.csrf}
        )
        assert answer.status_code == 200, answer.text
        revoked_at.append(time.monotonic())

    async with (
        httpx.AsyncClient(base_url=live.base_url, timeout=60, limits=httpx.Limits(max_connections=None)) as api,
        httpx.AsyncClient(base_url=live.base_url, timeout=60, cookies=admin.cookies) as dashboard,
    ):
        await asyncio.gather(revoker(dashboard), callers(api))
    return sent, revoked_at[0]


def test_no_request_sent_after_a_revocations_answer_is_accepted(
    live: LiveServer, database: Database, team: Team, production_hasher: SecretHasher
) -> None:
    made = Keys(database, production_hasher, team)
    with live.client() as client:
        assert sign_in(client, "admin@acme.example", PASSWORD).status_code == 303
        admin = Admin(client.cookies, client.get("/api/session").json()["csrf_token"])
    sent_after = 0
    for round_index in range(ROUNDS):
        issued = made.workspace_key(rate_limits=["100000/minute"])
        delay = 0.04 * round_index  # from the first moment of the verification to well after it
        sent, revoked_at = asyncio.run(race(live, team, issued.plaintext, issued.view.id, admin, delay))
        late = [answer for answer in sent if answer.at > revoked_at]
        assert late, "no request was sent after the revocation"
        assert all(answer.status == 401 for answer in late), [answer.status for answer in late]
        sent_after += len(late)
    assert sent_after >= ROUNDS


def test_a_revocation_at_the_token_endpoint_is_felt_before_its_answer(live: LiveServer, team: Team) -> None:
    """No poll to wait for: the request right after /oauth/revoke's 200 is refused, every time."""
    platform = register(live.resources.database, "make")
    auth = {"client_id": platform.client_id, "client_secret": platform.client_secret}
    with live.client() as client:
        for _ in range(10):
            tokens = connect(live.base_url, platform, team.account_id)
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            assert client.get("/v1/me", headers=bearer).status_code == 200  # verified, and cached
            revoked = client.post("/oauth/revoke", data={"token": tokens["refresh_token"], **auth})
            assert revoked.status_code == 200
            answer = client.get("/v1/me", headers=bearer)
            assert answer.status_code == 401 and answer.json()["error"] == "reconnect_required"


def test_refresh_token_reuse_is_felt_before_its_answer(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    with live.client() as client:
        for _ in range(5):
            first = connect(live.base_url, platform, team.account_id)
            second = refresh(live.base_url, platform, first["refresh_token"]).json()
            bearer = {"Authorization": f"Bearer {second['access_token']}"}
            assert client.get("/v1/me", headers=bearer).status_code == 200
            with live.resources.database.write() as session:  # the replay window has passed
                session.execute(
                    update(RefreshToken)
                    .where(RefreshToken.status == "rotated")
                    .values(rotated_at=utcnow() - timedelta(minutes=5))
                )
            assert refresh(live.base_url, platform, first["refresh_token"]).json()["error"] == "invalid_grant"
            answer = client.get("/v1/me", headers=bearer)
            assert answer.status_code == 401 and answer.json()["error"] == "reconnect_required"
