"""Large shared limits decided in process and reconciled with Redis in batches: a flood across instances is cut within
the documented slack (one batch and one request per instance over the limit), another credential keeps working,
every admission reaches Redis, and Redis going away and coming back behaves as without batches."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from tests.live import live_server
from tests.makers import Keys
from tests.servers import free_port, own_redis
from token_broker.guard.limiter import RateLimiter
from token_broker.guard.ratelimits import EXACT_UP_TO, parsed_limit
from token_broker.guard.redis_windows import RedisWindows, window_key
from token_broker.guard.shared_batches import BatchedWindows, batch_size

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TOKEN_BROKER_TEST_REDIS_URL")
    if not url:
        pytest.fail("TOKEN_BROKER_TEST_REDIS_URL is not set: run scripts/test, or deselect with -m 'not redis'")
    return url


def counted_in_redis(url: str, name: str, limit: str) -> int:
    """Admissions the shared window of (name, limit) holds."""
    key = window_key(name, limit)
    with redis.Redis.from_url(url) as client:
        if parsed_limit(limit)[0] <= EXACT_UP_TO:
            return int(client.llen(key))
        return sum(int(value) for value in client.hvals(key))


def test_small_limits_are_never_batched() -> None:
    assert batch_size(("100/minute",)) == 0 and batch_size(("199/second",)) == 0 and batch_size(()) == 0
    assert batch_size(("200/minute",)) == 2
    assert batch_size(("1000/minute", "100000/day")) == 10  # the smallest limit decides
    assert batch_size(("999999999/minute",)) == 400


@pytest.mark.parametrize("limit", ["1000/minute", "5000/minute"])  # an exact window, a sliced one
def test_a_flood_over_two_instances_is_cut_within_one_batch_each(redis_url: str, limit: str) -> None:
    count, slack = parsed_limit(limit)[0], batch_size((limit,))
    flooder, bystander = f"flood-{uuid.uuid4().hex}", f"calm-{uuid.uuid4().hex}"

    async def scenario() -> tuple[int, list[bool]]:
        instances = [BatchedWindows(RedisWindows.from_url(redis_url), lambda reason: None) for _ in range(2)]
        try:
            admitted, calm = 0, []
            for round_ in range((count + count // 4) // 16):
                hits = [instances[i % 2].hit(flooder, (limit,)) for i in range(16)]
                decisions = await asyncio.gather(*hits)
                admitted += sum(decision.allowed for decision in decisions)
                if round_ % 8 == 0:  # another credential, with the same limit, keeps working through the flood
                    calm.append((await instances[round_ % 2].hit(bystander, (limit,))).allowed)
            for windows in instances:
                await windows.reconcile_all()
            return admitted, calm
        finally:
            for windows in instances:
                await windows.close()
                await windows.windows.close()

    admitted, calm = asyncio.run(scenario())
    assert count <= admitted <= count + 2 * (slack + 1)
    assert all(calm) and len(calm) > 5
    assert counted_in_redis(redis_url, flooder, limit) == admitted  # every admission reached the shared window


def test_redis_going_away_and_back_with_batches(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    limit = ("2000/minute",)
    name = f"key-{uuid.uuid4().hex}"
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with own_redis(tmp_path, port) as server:
        limiter = RateLimiter(RedisWindows.from_url(url))

        async def scenario() -> tuple[list[bool], list[bool], str, int]:
            watcher = asyncio.create_task(limiter.watch_forever())
            before = [(await limiter.hit(name, limit)).allowed for _ in range(300)]
            server.terminate()
            server.wait(timeout=10)
            during = [(await limiter.hit(name, limit)).allowed for _ in range(300)]  # never an error
            for _ in range(200):  # the batch waiting when Redis went away finds it gone
                if limiter.mode == "local":
                    break
                await asyncio.sleep(0.05)
            mode = limiter.mode
            watcher.cancel()
            await limiter.close()
            return before, during, mode, limiter.redis_errors

        with caplog.at_level(logging.INFO, logger="token_broker.guard"):
            before, during, mode, errors = asyncio.run(scenario())
        assert all(before) and all(during)
        assert mode == "local" and errors >= 1
    assert caplog.text.count("Redis is unavailable") == 1


def test_reconciled_again_after_redis_returns(redis_url: str, tmp_path: Path) -> None:
    """A limiter that was in local mode shares again, with batches, once Redis answers."""
    limit = ("1000/minute",)
    name = f"key-{uuid.uuid4().hex}"
    limiter = RateLimiter(RedisWindows.from_url(redis_url))

    async def scenario() -> int:
        limiter._went_away("test: as if Redis had been away")
        assert limiter.mode == "local"
        watcher = asyncio.create_task(limiter.watch_forever())
        for _ in range(600):  # RETRY_SECONDS apart, it asks Redis again
            if limiter.mode == "shared":
                break
            await asyncio.sleep(0.05)
        admitted = sum([(await limiter.hit(name, limit)).allowed for _ in range(1100)])
        assert limiter.batched is not None
        await limiter.batched.reconcile_all()
        watcher.cancel()
        await limiter.close()
        return admitted

    admitted = asyncio.run(scenario())
    assert 1000 <= admitted <= 1000 + batch_size(limit) + 1  # shared again, within the bound for one instance
    assert counted_in_redis(redis_url, name, "1000/minute") == admitted


def test_two_app_instances_share_a_large_limit_within_the_slack(redis_url: str, database_url: str, make: Keys) -> None:
    limit = "400/minute"
    flood = make.workspace_key(rate_limits=[limit])
    calm = make.workspace_key(rate_limits=[limit])
    slack = batch_size((limit,))
    with live_server(database_url, redis_url=redis_url) as a, live_server(database_url, redis_url=redis_url) as b:
        bases = (a.base_url, b.base_url)

        def get(index: int, key: str) -> int:
            answer = httpx.get(f"{bases[index % 2]}/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=30)
            return answer.status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda i: get(i, str(flood.plaintext)), range(520)))
        others = [get(i, str(calm.plaintext)) for i in range(20)]
    assert set(statuses) == {200, 429}
    assert 400 <= statuses.count(200) <= 400 + 2 * (slack + 1)
    assert others == [200] * 20  # one credential's flood never touches another's limit


def test_a_flood_past_the_limit_does_not_ask_redis_each_time(redis_url: str) -> None:
    limit = ("200/minute",)
    name = f"key-{uuid.uuid4().hex}"

    async def scenario() -> tuple[int, list[bool], list[int], int]:
        windows = RedisWindows.from_url(redis_url)
        batched = BatchedWindows(windows, lambda reason: None)
        try:
            admitted = sum([(await batched.hit(name, limit)).allowed for _ in range(300)])
            await batched.reconcile_all()
            before = windows.round_trips
            past = [await batched.hit(name, limit) for _ in range(500)]
            return admitted, [d.allowed for d in past], [d.reset_seconds for d in past], windows.round_trips - before
        finally:
            await batched.close()
            await windows.close()

    admitted, allowed, resets, round_trips = asyncio.run(scenario())
    assert 200 <= admitted <= 200 + batch_size(limit) + 1
    assert not any(allowed) and min(resets) >= 1  # refused with a Retry-After, in process or by Redis
    assert round_trips <= 50  # one check a second at most, not one per request
