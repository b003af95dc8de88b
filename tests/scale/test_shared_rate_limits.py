"""Rate limits shared through Redis: exact across instances, the same windows as in process, and Redis going away
and coming back without a single 5xx."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.makers import Keys
from tests.scale.instances import Instances, metric, two_servers
from tests.servers import free_port, own_redis
from tests.support import CHEAP_HASHING, Team
from token_broker.credentials import SecretHasher
from token_broker.guard.ratelimits import CredentialRateLimiter
from token_broker.guard.redis_windows import RedisWindows
from token_broker.store.database import Database

SHARED = 'token_broker_rate_limiter_mode{mode="shared"}'


@pytest.mark.postgres
@pytest.mark.redis
def test_a_limit_holds_exactly_across_two_instances(instances: Instances, pg_database: Database, pg_team: Team) -> None:
    issued = Keys(pg_database, SecretHasher(CHEAP_HASHING), pg_team).workspace_key(rate_limits=["100/minute"])
    headers = {"Authorization": f"Bearer {issued.plaintext}"}
    clients = [httpx.Client(base_url=base, timeout=30, headers=headers) for base in (instances.a, instances.b)]

    def one(index: int) -> int:
        return clients[index % 2].get("/v1/me").status_code

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(one, range(500)))
    finally:
        for client in clients:
            client.close()
    assert statuses.count(200) == 100
    assert statuses.count(429) == 400


@st.composite
def sequences(draw: st.DrawFn) -> tuple[tuple[str, ...], list[float]]:
    limits = draw(
        st.lists(
            st.one_of(
                st.integers(1, 4).map(lambda n: f"{n}/second"),
                st.integers(1, 6).map(lambda n: f"{n}/minute"),
            ),
            min_size=1,
            max_size=3,
        )
    )
    steps = draw(st.lists(st.integers(0, 96), min_size=1, max_size=40))  # eighths of a second: exact in binary
    times, now = [], 1_700_000_000.0
    for step in steps:
        now += step / 8
        times.append(now)
    return tuple(limits), times


@pytest.mark.redis
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=sequences())
def test_the_redis_windows_decide_as_the_in_process_ones(
    redis_url: str, case: tuple[tuple[str, ...], list[float]]
) -> None:
    limits, times = case
    local = CredentialRateLimiter()
    name = uuid.uuid4().hex

    async def shared_decisions() -> list[object]:
        windows = RedisWindows.from_url(redis_url)
        try:
            return [await windows.hit(name, limits, now_us=int(when * 1_000_000)) for when in times]
        finally:
            await windows.close()

    assert asyncio.run(shared_decisions()) == [local.hit(name, limits, now=when) for when in times]


def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.postgres
@pytest.mark.redis
def test_redis_stopped_and_started_again(
    postgres_url: str, pg_database: Database, pg_team: Team, tmp_path: Path
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    keys = Keys(pg_database, SecretHasher(CHEAP_HASHING), pg_team)
    busy = keys.workspace_key(rate_limits=["100000/minute"])
    with ExitStack() as stack:
        redis = stack.enter_context(own_redis(tmp_path, port))
        instances = two_servers(stack, postgres_url, tmp_path, TOKEN_BROKER_REDIS_URL=url,
                                TOKEN_BROKER_SECRET_KEY=secrets.token_urlsafe(32))  # fmt: skip
        bases = (instances.a, instances.b)
        assert [metric(base, SHARED) for base in bases] == [1.0, 1.0]
        statuses: list[int] = []
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {busy.plaintext}"}) as client:

            def burst(count: int) -> None:
                statuses.extend(client.get(f"{bases[i % 2]}/v1/me").status_code for i in range(count))

            burst(40)
            redis.terminate()
            redis.wait(timeout=10)
            burst(200)  # Redis gone: decided per instance, never an error
            assert [metric(base, SHARED) for base in bases] == [0.0, 0.0]
            assert all((metric(base, "token_broker_redis_errors_total") or 0) >= 1 for base in bases)
            with own_redis(tmp_path, port):
                wait_for(lambda: [metric(base, SHARED) for base in bases] == [1.0, 1.0], 15)
                burst(40)
                limited = keys.workspace_key(rate_limits=["20/minute"])
                with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {limited.plaintext}"}) as other:
                    shared = [other.get(f"{bases[i % 2]}/v1/me").status_code for i in range(60)]
    assert statuses == [200] * 280
    assert shared.count(200) == 20 and shared.count(429) == 40  # one window for both instances again
    for log in instances.logs:
        text = log.read_text()
        assert text.count("Redis is unavailable") == 1, text
        assert text.count("rate limits are shared again") == 1, text
