"""`python -m benchmarks.refresh_request_cost [database URL]`: what one refresh REQUEST costs the serving process end to
end, without a socket: the app as `serve` runs it (`token_broker.server:app_from_env`, request log on) called as an
ASGI app, `POST /oauth/token` with a real refresh token each time: the form, client authentication (and its cache),
the rate limit, the hop to a worker thread, authlib, the write transaction, the after-commit hooks, the answer.

BENCH_REFRESHES (default 600) sequential requests after one warm-up; prints microseconds per request (elapsed and of
this process's CPU), statements and transactions per request and the load average. Without a URL it uses a SQLite
file in a scratch folder. BENCH_PROFILE=1 prints cProfile's top functions by cumulative time instead of timing.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import time
from typing import Any
from urllib.parse import urlencode

from benchmarks.common import scratch_dir
from benchmarks.speed import app_env, prepare
from benchmarks.statement_count import WHAT_IS_COUNTED, count_statements

COUNT = int(os.environ.get("BENCH_REFRESHES", "600"))
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
_STATE: dict[str, Any] = {}  # what the lifespan put in its scope's state, as uvicorn hands it to each request


async def _call(app: Any, body: bytes) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/oauth/token",
        "raw_path": b"/oauth/token",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": dict(_STATE),
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def _lifespan(app: Any) -> tuple[asyncio.Task[None], asyncio.Queue[dict[str, Any]]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": _STATE}
    task = asyncio.create_task(app(scope, receive, send))
    await inbox.put({"type": "lifespan.startup"})
    await started.wait()
    return task, inbox


async def _measure(app: Any, engine_counts: dict[str, int], bodies: list[bytes]) -> None:
    task, inbox = await _lifespan(app)
    status, answer = await _call(app, bodies[0])  # warm-up: the client cache, the statement caches
    assert status == 200, answer
    engine_counts.update(statements=0, transactions=0)
    profiler = cProfile.Profile() if PROFILE else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for body in bodies[1:]:
        status, answer = await _call(app, body)
        assert status == 200, answer
    if profiler:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    done = len(bodies) - 1
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    sys.stdout.flush()
    print(f"{done} refresh requests through the ASGI app, one at a time")
    print(f"statements per request ({', '.join(f'{k}: {v}' for k, v in WHAT_IS_COUNTED.items())}): "
          f"{engine_counts['statements'] / done:.1f}")  # fmt: skip
    print(f"transactions per request: {engine_counts['transactions'] / done:.1f}")
    print(f"microseconds per request: {elapsed / done * 1e6:,.0f} elapsed, {cpu / done * 1e6:,.0f} of CPU")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 10)


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{scratch_dir('refresh-request') / 'refresh.db'}"
    store = prepare(url, COUNT)
    os.environ.update({"TOKEN_BROKER_ISSUER": "http://127.0.0.1:8000", **app_env(store)})
    from token_broker.server import app_from_env

    counts = count_statements()
    client = {"client_id": store.client_id, "client_secret": store.client_secret}
    bodies = [
        urlencode({"grant_type": "refresh_token", "refresh_token": token, **client}).encode() for token in store.refresh
    ]
    asyncio.run(_measure(app_from_env(), counts, bodies))


if __name__ == "__main__":
    main()
