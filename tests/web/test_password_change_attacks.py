"""A stolen session guessing the current password: the guesses are checked in the bounded password pool (never the
thread pool the database calls share), five wrong ones stop that user's guessing, and a full pool sheds the attempt
with 503 and Retry-After at no cost to the user's budget; other users change their passwords meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import httpx
import pytest

from tests.live import LiveServer
from tests.support import PASSWORD, Team
from tests.web.test_session_end import signed_in_client
from token_broker.hashing_pool import HashingPool
from token_broker.services import members


def change(client: httpx.Client, csrf: str, current: str, new: str = "a brand new password") -> httpx.Response:
    return client.post(
        "/api/account/password",
        json={"current_password": current, "new_password": new},
        headers={"X-CSRF-Token": csrf},
    )


def test_wrong_current_passwords_are_checked_in_the_password_pool_and_throttled_per_user(
    live: LiveServer, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real_change = members.change_password

    def recording(*args: Any) -> int:
        threads.append(threading.current_thread().name)
        return real_change(*args)

    monkeypatch.setattr(members, "change_password", recording)
    thief, thief_csrf = signed_in_client(live, "member@acme.example")  # the member's cookie, stolen
    other, other_csrf = signed_in_client(live, "viewer@acme.example")
    with closing(thief), closing(other):
        answers = [change(thief, thief_csrf, f"guess number {n}") for n in range(5)]
        assert [a.json()["error"] for a in answers] == ["wrong_password"] * 5
        throttled = change(thief, thief_csrf, "guess number 6")
        assert throttled.status_code == 429 and throttled.json()["error"] == "rate_limited"
        right = change(thief, thief_csrf, PASSWORD)
        assert right.status_code == 429, "even the right password waits: guessing must not go on"
        done = change(other, other_csrf, PASSWORD, "the viewer's new password")
        assert done.status_code == 200, "another user's budget is their own"
    assert threads and all(name.startswith("verify-passwords") for name in threads), threads


@contextmanager
def full_password_pool(live: LiveServer) -> Iterator[HashingPool]:
    """A one-thread pool whose thread is busy and whose queue already holds this address's one job."""
    state = live.resources
    pool = HashingPool("verify-passwords", threads=1, max_queued=4, max_per_source=1)
    original = state.password_pool
    object.__setattr__(state, "password_pool", pool)  # Resources is frozen; this test swaps in a tiny pool
    started, release = threading.Event(), threading.Event()
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()

    def hog() -> None:
        started.set()
        release.wait(60)

    running = asyncio.run_coroutine_threadsafe(pool.run("127.0.0.1", hog), loop)
    assert started.wait(30)
    queued = asyncio.run_coroutine_threadsafe(pool.run("127.0.0.1", lambda: None), loop)
    try:
        for _ in range(3000):
            if pool.queued == 1:
                break
            threading.Event().wait(0.01)
        assert pool.queued == 1
        yield pool
    finally:
        release.set()
        running.result(60)
        queued.result(60)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(30)
        loop.close()
        pool.close()
        object.__setattr__(state, "password_pool", original)


def test_a_full_password_pool_sheds_the_change_with_503_and_it_costs_no_guess(live: LiveServer, team: Team) -> None:
    client, csrf = signed_in_client(live, "admin@acme.example")
    with closing(client):
        with full_password_pool(live):
            shed = change(client, csrf, "a wrong guess")
            assert shed.status_code == 503 and shed.json()["error"] == "service_unavailable"
            assert int(shed.headers["retry-after"]) >= 1
            form = client.get("/account")
            page = client.post(
                "/account/password",
                data={"csrf_token": csrf, "current_password": "a wrong guess", "new_password": "a brand new one"},
            )
            assert form.status_code == 200 and page.status_code == 503 and int(page.headers["retry-after"]) >= 1
        user = client.get("/api/session").json()["user"]["id"]
        failures = live.resources.password_change_failures
        for _ in range(5):  # the shed attempts spent none of the user's five
            assert failures.admit(user, "127.0.0.1")
            failures.succeeded(user, "127.0.0.1")
        assert change(client, csrf, PASSWORD).status_code == 200
