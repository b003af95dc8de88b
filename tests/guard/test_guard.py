"""The guard's promises: argon2 at most once per credential per cache lifetime, wrong secrets throttled per id and
per address, concurrent first requests verified once, revocation honoured, last_used_at written in batches."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import select

from tests.live import LiveServer
from tests.makers import Keys
from tests.support import Team
from token_broker import credentials
from token_broker.credentials import CredentialKind
from token_broker.guard.addresses import address_allowed
from token_broker.guard.cache import VerificationCache
from token_broker.guard.throttle import TokenBuckets
from token_broker.services import keys
from token_broker.store.models import Credential


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_argon2_runs_once_per_credential(live: LiveServer, make: Keys) -> None:
    first, second = make.workspace_key(), make.workspace_key()
    guard = live.resources.guard
    with live.client() as client:
        for _ in range(25):
            assert client.get("/v1/me", headers=bearer(first.plaintext)).status_code == 200
            assert client.get("/v1/me", headers=bearer(second.plaintext)).status_code == 200
    assert guard.store_verifications == 2
    assert guard.cache.hits >= 48


def test_concurrent_first_requests_verify_once(live: LiveServer, make: Keys) -> None:
    issued = make.workspace_key(rate_limits=["1000/minute"])
    guard = live.resources.guard

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as client:
            answers = await asyncio.gather(*(client.get("/v1/me", headers=bearer(issued.plaintext)) for _ in range(30)))
        return [answer.status_code for answer in answers]

    assert asyncio.run(burst()) == [200] * 30
    assert guard.store_verifications == 1


def test_sprayed_wrong_secrets_are_throttled_and_the_real_key_keeps_working(live: LiveServer, make: Keys) -> None:
    issued = make.workspace_key(rate_limits=["10000/minute"])
    guard = live.resources.guard
    with live.client() as client:
        assert client.get("/v1/me", headers=bearer(issued.plaintext)).status_code == 200
        for _ in range(200):
            wrong = credentials.generate(CredentialKind.WORKSPACE_KEY, public_id=issued.view.id).plaintext
            response = client.get("/v1/me", headers=bearer(wrong))
            assert response.status_code == 401 and response.json()["error"] == "invalid_api_key"
            assert client.get("/v1/me", headers=bearer(issued.plaintext)).status_code == 200
    # 1 real verification, then the id's budget of 3 plus what it refilled meanwhile (1 per 10 s)
    assert guard.store_verifications <= 1 + 3 + 6
    assert guard.throttle.refused > 100


def test_one_address_spraying_many_ids_is_throttled(live: LiveServer) -> None:
    guard = live.resources.guard
    with live.client() as client:
        for _ in range(100):
            unknown = credentials.generate(CredentialKind.WORKSPACE_KEY).plaintext
            assert client.get("/v1/me", headers=bearer(unknown)).json()["error"] == "invalid_api_key"
    assert guard.store_verifications <= 20 + 60
    assert guard.throttle.refused > 0


def test_a_dead_key_presented_again_and_again_costs_one_verification(live: LiveServer, make: Keys, team: Team) -> None:
    old = make.workspace_key(rate_limits=["10000/minute"])
    new = keys.rotate_key(make.database, make.hasher, team.admin, old.view.id, grace_seconds=0)
    guard = live.resources.guard
    with live.client() as client:
        for _ in range(50):  # a forgotten server still using the rotated-out secret
            assert client.get("/v1/me", headers=bearer(old.plaintext)).status_code == 401
        assert client.get("/v1/me", headers=bearer(new.plaintext)).status_code == 200
    assert guard.store_verifications == 2


def test_forget_makes_revocation_effective_on_the_very_next_request(live: LiveServer, make: Keys, team: Team) -> None:
    issued = make.workspace_key()
    with live.client() as client:
        assert client.get("/v1/me", headers=bearer(issued.plaintext)).status_code == 200
        keys.revoke_key(make.database, team.admin, issued.view.id)
        live.resources.guard.forget(issued.view.id)
        assert client.get("/v1/me", headers=bearer(issued.plaintext)).status_code == 401


def test_last_used_is_written_in_batches(live: LiveServer, make: Keys) -> None:
    issued = make.workspace_key()
    with live.client() as client:
        for _ in range(5):
            assert client.get("/v1/me", headers=bearer(issued.plaintext)).status_code == 200
    deadline = time.monotonic() + 10
    while True:
        with make.database.read() as session:
            used = session.scalar(select(Credential.last_used_at).where(Credential.public_id == issued.view.id))
        if used is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert used is not None


@pytest.mark.parametrize(
    ("address", "allowed", "expected"),
    [
        ("10.1.2.3", ("10.0.0.0/8",), True),
        ("11.1.2.3", ("10.0.0.0/8",), False),
        ("::ffff:10.1.2.3", ("10.0.0.0/8",), True),
        ("2001:db8::1", ("2001:db8::/32",), True),
        ("2001:db9::1", ("2001:db8::/32",), False),
        ("10.1.2.3", ("2001:db8::/32",), False),
        (None, ("10.0.0.0/8",), False),
        ("not an address", ("10.0.0.0/8",), False),
        ("anything", (), True),
    ],
)
def test_address_allowed(address: str | None, allowed: tuple[str, ...], expected: bool) -> None:
    assert address_allowed(address, allowed) is expected


def test_cache_is_bounded_and_forgets_by_id() -> None:
    from tests.guard.snapshots import snapshot

    cache = VerificationCache(max_entries=3)
    for index in range(5):
        cache.put(cache.digest(f"secret-{index}"), snapshot(f"id{index:010d}"))
    assert len(cache) == 3
    assert cache.get(cache.digest("secret-0")) is None
    assert cache.get(cache.digest("secret-4")) is not None
    cache.invalidate("id0000000004")
    assert cache.get(cache.digest("secret-4")) is None
    assert cache.digest("secret-1") != VerificationCache().digest("secret-1")  # keyed per process


def test_token_buckets_refill_and_stay_bounded() -> None:
    buckets = TokenBuckets(capacity=2, per_second=1000, max_buckets=10)
    assert buckets.take("a") and buckets.take("a")
    time.sleep(0.01)
    assert buckets.take("a")
    slow = TokenBuckets(capacity=1, per_second=0.001)
    assert slow.take("b") and not slow.take("b")
    slow.give_back("b")
    assert slow.take("b")
    for name in range(50):
        buckets.take(str(name))
    assert len(buckets._buckets) <= 10
