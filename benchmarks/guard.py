"""`scripts/bench guard`: what authentication costs on the workspace API.

In one run, against one uvicorn worker (pinned to one core) with wrk in another process (on the other core):
  (1) requests per second of GET /v1/me with a valid key;
  (2) requests per second of GET /bench/me: the same app and JSON answer, without the guard;
  (3) requests per second of (1) while a second wrk sprays well-formed wrong secrets for the same key id;
  (4) latency of the first request of a never-seen key (argon2 at production cost), beside a cached request.
Prints (1)/(2) (aim: at least 0.85) and (3)/(1) (aim: at least 0.8).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from benchmarks.common import report, require_wrk, scratch_dir, uvicorn_process, wrk
from token_broker import credentials
from token_broker.app import create_app
from token_broker.config import Settings
from token_broker.credentials import CredentialKind, SecretHasher
from token_broker.services import keys, workspaces
from token_broker.services.actors import Actor
from token_broker.services.keys import KeyRequest
from token_broker.store import migrate
from token_broker.store.database import Database

SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = 16
UNLIMITED = ["999999999/minute"]


async def unguarded_me(_request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "account_id": "acc_benchmark000000",
            "workspace": {"name": "Benchmark"},
            "credential": {
                "id": "AAAAAAAAAAAA",
                "name": "bench",
                "kind": "workspace_key",
                "platform": None,
                "scopes": None,
            },
        }
    )


def bench_app() -> Starlette:
    """The real app, plus /bench/me: the /v1/me answer without the guard in front of it."""
    app = create_app(Settings.from_env())
    app.router.routes.insert(0, Mount("/bench", routes=[Route("/me", unguarded_me)]))
    return app


def prepare(folder: Path) -> tuple[str, str, list[str]]:
    url = f"sqlite:///{folder / 'bench.db'}"
    database = Database(url)
    migrate.upgrade(database)
    hasher = SecretHasher(Settings.from_env({}).hashing)  # production argon2 cost
    operator = Actor.operator()
    account_id = workspaces.create_workspace(database, operator, "Benchmark")
    issued = keys.create_key(database, hasher, operator, account_id, KeyRequest(name="bench", rate_limits=UNLIMITED))
    fresh = [
        plaintext_of(
            keys.create_key(database, hasher, operator, account_id, KeyRequest(f"f{i}", rate_limits=UNLIMITED))
        )
        for i in range(12)
    ]
    wrong = [
        credentials.generate(CredentialKind.WORKSPACE_KEY, public_id=issued.view.id).plaintext for _ in range(20000)
    ]
    (folder / "wrong-keys.txt").write_text("\n".join(wrong) + "\n")
    database.dispose()
    return url, plaintext_of(issued), fresh


def plaintext_of(issued: keys.IssuedKey) -> str:
    assert issued.plaintext is not None
    return issued.plaintext


def first_request_latency(base: str, fresh: list[str]) -> tuple[float, float]:
    firsts: list[float] = []
    cached: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        client.get("/healthz")
        for key in fresh:
            for bucket in (firsts, cached):
                started = time.perf_counter()
                assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
                bucket.append((time.perf_counter() - started) * 1000)
    return statistics.median(firsts), statistics.median(cached)


def main() -> None:
    require_wrk()
    folder = scratch_dir("guard")
    url, key, fresh = prepare(folder)
    env = {"TOKEN_BROKER_DATABASE_URL": url, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    auth = {"Authorization": f"Bearer {key}"}
    guarded: list[float] = []
    unguarded: list[float] = []
    sprayed: list[float] = []
    spray_rates: list[float] = []
    with uvicorn_process("benchmarks.guard:bench_app", env, folder / "server.log") as base:
        wrk(f"{base}/v1/me", 2, CONNECTIONS, auth)  # warm up: the key's one argon2 verification, caches, JIT-free paths
        wrk(f"{base}/bench/me", 2, CONNECTIONS)
        for _ in range(ROUNDS):
            unguarded.append(wrk(f"{base}/bench/me", SECONDS, CONNECTIONS).requests_per_second)
            run = wrk(f"{base}/v1/me", SECONDS, CONNECTIONS, auth)
            assert run.non_2xx == 0, "the valid key was refused during the benchmark"
            guarded.append(run.requests_per_second)
            spray_result: dict[str, Any] = {}

            def spray(spray_result: dict[str, Any] = spray_result) -> None:
                spray_result["run"] = wrk(
                    f"{base}/v1/me", SECONDS, 1, script=Path(__file__).with_name("spray.lua"),
                    script_args=(str(folder / "wrong-keys.txt"),),
                )  # fmt: skip

            sprayer = threading.Thread(target=spray)
            sprayer.start()
            time.sleep(0.2)
            sprayed.append(wrk(f"{base}/v1/me", SECONDS - 1, CONNECTIONS, auth).requests_per_second)
            sprayer.join()
            spray_rates.append(spray_result["run"].requests_per_second)
        first_ms, cached_ms = first_request_latency(base, fresh)
    one, two, three = statistics.median(guarded), statistics.median(unguarded), statistics.median(sprayed)
    report(
        "guard",
        [
            ("(1) GET /v1/me, valid key", f"{one:,.0f} req/s"),
            ("(2) same answer, no auth", f"{two:,.0f} req/s"),
            (
                "(3) (1) under a spray of wrong secrets",
                f"{three:,.0f} req/s (sprayer: {statistics.median(spray_rates):,.0f} req/s)",
            ),
            ("(4) first request of a new key", f"{first_ms:.1f} ms median (a cached request: {cached_ms:.1f} ms)"),
            ("rounds x seconds", f"{ROUNDS} x {SECONDS}, {CONNECTIONS} connections, one worker"),
        ],
        [("(1)/(2)", one / two, 0.85), ("(3)/(1)", three / one, 0.8)],
    )


if __name__ == "__main__":
    main()
