"""The bounded hashing pool: a few threads, a bounded queue served one source at a time in turn, excess shed."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import httpx
import pytest

from tests.browser_forms import hidden_inputs
from tests.live import LiveServer
from tests.makers import Keys
from tests.support import PASSWORD, Team
from token_broker.hashing_pool import SUSPECT_REST_FACTOR, HashingBusy, HashingPool
from token_broker.services import workspaces
from token_broker.sources import source_of


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_sources_are_ipv4_addresses_and_ipv6_networks_of_64() -> None:
    assert source_of("192.0.2.7") == "192.0.2.7"
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_of(source_of("2001:db8:1:2::1")) == "2001:db8:1:2::/64"  # a source is its own source
    assert source_of(None) == source_of("") == source_of("not an address") == "unknown"


def test_sources_take_turns_and_a_busy_source_does_not_delay_a_new_one() -> None:
    pool = HashingPool("test", threads=1, max_queued=32, max_per_source=8)
    gate = threading.Event()
    order: list[str] = []

    async def scenario() -> None:
        blocker = asyncio.ensure_future(pool.run("hog", gate.wait))
        await asyncio.sleep(0.05)  # the only thread is busy: what follows queues
        hog = [asyncio.ensure_future(pool.run("hog", lambda: order.append("hog"))) for _ in range(6)]
        await asyncio.sleep(0)
        newcomer = asyncio.ensure_future(pool.run("newcomer", lambda: order.append("newcomer")))
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(blocker, *hog, newcomer)

    try:
        asyncio.run(scenario())
    finally:
        pool.close()
    assert order.index("newcomer") <= 1  # served after at most one of the hog's queued jobs, not after all six


def test_excess_is_shed_per_source_and_a_full_queue_sheds_the_biggest_source_first() -> None:
    pool = HashingPool("test", threads=1, max_queued=4, max_per_source=3)
    gate = threading.Event()

    async def scenario() -> tuple[list[object], object]:
        blocker = asyncio.ensure_future(pool.run("a", gate.wait))  # the only thread is busy with it
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(pool.run("a", lambda: "a")) for _ in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(HashingBusy) as too_many:  # a's fourth waiting job
            await pool.run("a", lambda: "a")
        assert too_many.value.retry_after >= 1
        b = asyncio.ensure_future(pool.run("b", lambda: "b"))  # the queue is at its bound: 3 of a's, and b's
        await asyncio.sleep(0)
        c = asyncio.ensure_future(pool.run("c", lambda: "c"))  # full: the newest of a's jobs makes room
        await asyncio.sleep(0)
        gate.set()
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
        await blocker
        return outcomes, await asyncio.gather(b, c)

    try:
        outcomes, others = asyncio.run(scenario())
    finally:
        pool.close()
    assert outcomes[:2] == ["a", "a"] and isinstance(outcomes[2], HashingBusy)
    assert others == ["b", "c"]
    assert pool.shed == 2


def test_errors_reach_the_caller_and_the_pool_keeps_working() -> None:
    pool = HashingPool("test", threads=2)

    def fails() -> None:
        raise ValueError("boom")

    async def scenario() -> int:
        with pytest.raises(ValueError, match="boom"):
            await pool.run("a", fails)
        return await pool.run("a", lambda: 7)

    try:
        assert asyncio.run(scenario()) == 7
    finally:
        pool.close()


def test_suspect_sources_wait_behind_clean_ones_and_make_room_for_them() -> None:
    pool = HashingPool("test", threads=1, max_queued=6, max_per_source=4)
    gate = threading.Event()
    order: list[str] = []

    async def scenario() -> list[object]:
        blocker = asyncio.ensure_future(pool.run("x", gate.wait))
        await asyncio.sleep(0.05)
        suspects = [
            asyncio.ensure_future(pool.run(name, lambda name=name: order.append(name), suspect=True))  # type: ignore[misc]
            for name in ("s1", "s2", "s3", "s4", "s5", "s6")
        ]
        await asyncio.sleep(0)
        clean = asyncio.ensure_future(pool.run("clean", lambda: order.append("clean")))  # the queue is full
        await asyncio.sleep(0)
        gate.set()
        await blocker
        await clean
        return await asyncio.gather(*suspects, return_exceptions=True)

    try:
        outcomes = asyncio.run(scenario())
    finally:
        pool.close()
    assert order[0] == "clean"  # ahead of every suspect, though it came last
    assert sum(isinstance(outcome, HashingBusy) for outcome in outcomes) == 1  # one suspect made room for it


def test_the_pools_show_in_the_metrics(live: LiveServer) -> None:
    with live.client() as client:
        text = client.get("/metrics").text
    for pool in ("verify-secrets", "verify-passwords"):
        assert f'token_broker_hashing_shed_total{{pool="{pool}"}} 0.0' in text
        assert f'token_broker_hashing_queued{{pool="{pool}"}} 0.0' in text


def test_a_full_secret_pool_answers_503_with_retry_after_and_cached_keys_still_pass(
    live: LiveServer, make: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = live.resources.guard
    cached = make.workspace_key()
    new_keys = [make.workspace_key().plaintext for _ in range(3)]
    with live.client() as client:
        assert client.get("/v1/me", headers=bearer(cached.plaintext)).status_code == 200
    monkeypatch.setattr(guard, "pool", HashingPool("verify-secrets", threads=1, max_queued=4, max_per_source=1))
    release = threading.Event()
    real_check = guard._check

    def slow_check(presented: str) -> object:
        release.wait(30)
        return real_check(presented)

    monkeypatch.setattr(guard, "_check", slow_check)

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live.base_url, timeout=60) as client:
            running = asyncio.ensure_future(client.get("/v1/me", headers=bearer(new_keys[0])))  # takes the thread
            await asyncio.sleep(0.5)
            waiting = asyncio.ensure_future(client.get("/v1/me", headers=bearer(new_keys[1])))  # this source's one
            await asyncio.sleep(0.5)
            shed = await client.get("/v1/me", headers=bearer(new_keys[2]))
            still_cached = await client.get("/v1/me", headers=bearer(cached.plaintext))
            release.set()
            return [shed, still_cached, await running, await waiting]

    try:
        shed, still_cached, running, waiting = asyncio.run(scenario())
    finally:
        release.set()
        guard.pool.close()
    assert shed.status_code == 503 and shed.json()["error"] == "service_unavailable"
    assert int(shed.headers["retry-after"]) >= 1
    assert still_cached.status_code == 200  # cached keys never touch the pool
    assert running.status_code == waiting.status_code == 200


def test_sign_ins_beyond_the_password_pool_are_shed_with_503_and_cost_no_attempt(
    live: LiveServer, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = live.resources
    small = HashingPool("verify-passwords", threads=1, max_queued=4, max_per_source=1)
    object.__setattr__(state, "password_pool", small)  # Resources is frozen; this test swaps in a tiny pool
    release = threading.Event()
    real_authenticate = workspaces.authenticate

    def slow_authenticate(*args: Any) -> Any:
        release.wait(30)
        return real_authenticate(*args)

    monkeypatch.setattr(workspaces, "authenticate", slow_authenticate)

    async def attempt(client: httpx.AsyncClient, email: str) -> httpx.Response:
        form = hidden_inputs((await client.get("/login")).text, "/login")
        return await client.post("/login", data={**form, "email": email, "password": PASSWORD})

    async def scenario() -> list[httpx.Response]:
        clients = [httpx.AsyncClient(base_url=live.base_url, timeout=60) for _ in range(3)]
        try:
            running = asyncio.ensure_future(attempt(clients[0], "owner@acme.example"))
            await asyncio.sleep(0.5)
            waiting = asyncio.ensure_future(attempt(clients[1], "viewer@acme.example"))
            await asyncio.sleep(0.5)
            shed = await attempt(clients[2], "admin@acme.example")
            release.set()
            return [shed, await running, await waiting]
        finally:
            for client in clients:
                await client.aclose()

    try:
        shed, running, waiting = asyncio.run(scenario())
    finally:
        release.set()
        small.close()
    assert shed.status_code == 503 and int(shed.headers["retry-after"]) >= 1
    assert running.status_code == waiting.status_code == 303  # signed in
    for _ in range(5):  # the shed attempt spent none of the email's budget of five
        assert state.sign_in_failures.admit("admin@acme.example", "127.0.0.1")


def test_suspects_share_one_resting_thread_however_many_sources_they_have() -> None:
    """Wrong secrets from any number of sources cost at most a quarter of one thread: suspects' jobs never overlap,
    and after each the pool rests SUSPECT_REST_FACTOR times its length before the next suspect's job starts. (The
    pool measures each job from outside it, so the gaps seen inside the jobs can only be longer: no timing luck.)"""
    pool = HashingPool("test", threads=2, max_queued=32, max_per_source=4)
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def work() -> None:
        started = time.monotonic()
        time.sleep(0.02)
        with lock:
            spans.append((started, time.monotonic()))

    async def scenario() -> None:
        jobs = [pool.run(f"suspect-{index}", work, suspect=True) for index in range(6)]
        await asyncio.gather(*jobs)

    try:
        asyncio.run(scenario())
    finally:
        pool.close()
    spans.sort()
    assert len(spans) == 6
    for (_, ended), (next_started, _) in itertools.pairwise(spans):
        assert next_started >= ended, "two suspects' jobs ran at once"
    for (started, ended), (next_started, _) in itertools.pairwise(spans):
        assert next_started - ended >= SUSPECT_REST_FACTOR * (ended - started)


def test_a_clean_source_is_not_held_back_by_resting_suspects() -> None:
    pool = HashingPool("test", threads=1, max_queued=32, max_per_source=4)
    gate = threading.Event()
    order: list[str] = []

    def first_suspect() -> None:
        gate.wait()
        order.append("suspect")

    async def scenario() -> None:
        blocker = asyncio.ensure_future(pool.run("suspect-0", first_suspect, suspect=True))
        await asyncio.sleep(0.05)  # the only thread runs the first suspect's job: what follows queues
        suspects = [
            asyncio.ensure_future(pool.run(f"suspect-{index}", lambda: order.append("suspect"), suspect=True))
            for index in range(1, 4)
        ]
        clean = asyncio.ensure_future(pool.run("clean", lambda: order.append("clean")))
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(blocker, clean, *suspects)

    try:
        asyncio.run(scenario())
    finally:
        pool.close()
    assert order.index("clean") <= 1  # suspects rest after their job: the clean source goes next
