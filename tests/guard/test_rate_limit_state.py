"""Rate-limit state an attacker cannot flush or grow: each kind of name in its own bounded container, and windows
whose memory does not grow with their limit, yet never admit more than the limit in any period."""

from __future__ import annotations

import asyncio
import os
import random
import uuid

import pytest

from tests.live import LiveServer
from tests.makers import Keys
from token_broker.guard.limiter import RateLimiter
from token_broker.guard.ratelimits import EXACT_UP_TO, SLICES, CredentialRateLimiter
from token_broker.guard.redis_windows import RedisWindows


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TOKEN_BROKER_TEST_REDIS_URL")
    if not url:
        pytest.fail("TOKEN_BROKER_TEST_REDIS_URL is not set: run scripts/test, or deselect with -m 'not redis'")
    return url


def test_token_endpoint_names_live_apart_from_credential_windows() -> None:
    limiter = RateLimiter(local=CredentialRateLimiter(max_windows=10))

    async def scenario() -> list[bool]:
        decisions = [(await limiter.hit("AAAAAAAAAAAA", ("2/minute",))).allowed for _ in range(3)]
        for index in range(5000):  # junk client ids, each one request
            await limiter.hit(f"client:junk-{index}", ("1200/minute",))
        decisions.append((await limiter.hit("AAAAAAAAAAAA", ("2/minute",))).allowed)
        return decisions

    assert asyncio.run(scenario()) == [True, True, False, False]  # the key's window survived the junk
    assert len(limiter.local) == 1
    assert len(limiter.local_for("client:x")) <= 50_000


def test_junk_client_ids_at_the_token_endpoint_do_not_reset_a_keys_limit(live: LiveServer, make: Keys) -> None:
    issued = make.workspace_key(rate_limits=["3/minute"])
    headers = {"Authorization": f"Bearer {issued.plaintext}"}
    limiter = live.resources.guard.rate_limiter
    with live.client() as client:
        assert [client.get("/v1/me", headers=headers).status_code for _ in range(4)] == [200, 200, 200, 429]
        for index in range(300):
            client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": f"junk-{index}"})
        assert client.get("/v1/me", headers=headers).status_code == 429
    assert len(limiter.local) == 1


def test_a_huge_limit_keeps_a_small_window() -> None:
    limiter = CredentialRateLimiter()
    now = 1_700_000_000.0
    for _ in range(20_000):
        now += 0.5
        assert limiter.hit("AAAAAAAAAAAA", ("1000000/day",), now=now).allowed
    [window] = limiter._windows.values()
    assert len(window.slices) <= SLICES + 1  # type: ignore[union-attr]


def test_sliced_windows_never_admit_more_than_the_limit_in_any_period() -> None:
    count, period = EXACT_UP_TO + 500, 60
    limit = f"{count}/minute"
    limiter = CredentialRateLimiter()
    rng = random.Random(7)
    now, admitted, refused_when_free = 1_700_000_000.0, [], 0
    for _ in range(20_000):
        now += rng.expovariate(60)  # bursts and lulls
        if limiter.hit("AAAAAAAAAAAA", (limit,), now=now).allowed:
            admitted.append(now)
        elif sum(1 for when in admitted if when > now - period - period / SLICES) < count:
            refused_when_free += 1
    start = 0
    for end, moment in enumerate(admitted):  # every window of one period holds at most `count` admissions
        while admitted[start] <= moment - period:
            start += 1
        assert end - start + 1 <= count
    assert refused_when_free == 0  # refused only while the limit (counted a slice generously) was really full
    assert len(admitted) > count


def test_exact_windows_stay_exact_below_the_threshold() -> None:
    limiter = CredentialRateLimiter()
    assert [limiter.hit("B", ("2/second",), now=t).allowed for t in (0.0, 0.1, 0.2, 1.0, 1.05, 1.1)] == [
        True, True, False, True, False, True,
    ]  # fmt: skip


def test_token_endpoint_still_limits_a_client(live: LiveServer) -> None:
    """The public interface is unchanged: hit(name, limits)."""
    limiter = live.resources.guard.rate_limiter
    decision = asyncio.run(limiter.hit("client:someone", ("1/minute",)))
    assert decision.allowed and not asyncio.run(limiter.hit("client:someone", ("1/minute",))).allowed


@pytest.mark.redis
def test_sliced_windows_in_redis_decide_as_the_in_process_ones(redis_url: str) -> None:
    limits = ("1001/second", "1500/minute")
    rng = random.Random(11)
    now, times = 1_700_000_000.0, []
    for _ in range(3000):  # steps of 1/64 s: exact in binary and in microseconds, so both sides floor alike
        now += 0 if rng.random() < 0.97 else rng.randint(1, 80) / 64
        times.append(now)
    local = CredentialRateLimiter()
    name = uuid.uuid4().hex

    async def shared_decisions() -> list[object]:
        windows = RedisWindows.from_url(redis_url)
        try:
            return [await windows.hit(name, limits, now_us=int(when * 1_000_000)) for when in times]
        finally:
            await windows.close()

    shared = asyncio.run(shared_decisions())
    assert shared == [local.hit(name, limits, now=when) for when in times]
    assert any(not decision.allowed for decision in shared)  # type: ignore[attr-defined]
