"""`scripts/bench scale`: the guard on PostgreSQL with many credentials, shared limits in Redis, and how fast a
revocation made through one instance is refused by another.

scripts/bench starts a throwaway PostgreSQL and Redis and passes their URLs (BENCH_POSTGRES_URL, BENCH_REDIS_URL).
With 1,000 and then 1,000,000 credentials in the store (filler rows inserted with one INSERT ... SELECT
generate_series and dummy hashes; only the measured keys have real ones):
  (1) requests per second of GET /v1/me with a cached key, rate limits in process, one worker pinned to one core
      (wrk on the other), JSON request log at level info as `serve` writes it; (1q) the same without the request log
      (level warning); (1r) the same as (1) with rate limits shared in Redis;
  (2) first requests of never-seen keys, 8 at a time: keys verified per second and median latency, at production
      argon2 cost and at the cheapest cost (which leaves the store lookup and the rest of the path).
  (2s) the store lookup alone (a credential by public id), timed from this process.
Then, with two instances A and B: (3) for each of REVOCATIONS keys cached by A, the time from B's answer to a revoke
(admin JSON API) to the first request A refused (A asked in a tight loop from before the revoke was sent; negative
when A refused before B's answer arrived), with LISTEN/NOTIFY and with polling alone.
Prints; asserts nothing but that the runs themselves worked.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from sqlalchemy import text

from benchmarks.common import report, require_wrk, scratch_dir, uvicorn_process, wrk
from token_broker.config import HashingCost, Settings
from token_broker.credentials import SecretHasher
from token_broker.services import keys, workspaces
from token_broker.services.actors import Actor
from token_broker.services.keys import KeyRequest
from token_broker.store import migrate
from token_broker.store.database import Database

SECONDS = int(os.environ.get("BENCH_SECONDS", "6"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
REVOCATIONS = int(os.environ.get("BENCH_REVOCATIONS", "50"))
SIZES = tuple(int(size) for size in os.environ.get("BENCH_SIZES", "1000,1000000").split(","))
CONNECTIONS = 16
FACTORY = "token_broker.server:app_from_env"
FRESH_KEYS = 24
UNLIMITED = ["999999999/minute"]
CHEAPEST = HashingCost(time_cost=1, memory_kib=1024, parallelism=1)
PASSWORD = "bench password " + secrets.token_hex(4)
DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$ZHVtbXlzYWx0ZHVtbXk$ZHVtbXloYXNoZHVtbXloYXNoZHVtbXloYXNoZHVtbXk"


def fill(database: Database, workspace_id: int, total: int) -> None:
    """Filler credentials up to `total` rows, inserted by PostgreSQL itself."""
    with database.write() as session:
        have = session.scalar(text("SELECT count(*) FROM credentials")) or 0
        session.execute(
            text(
                "INSERT INTO credentials (public_id, workspace_id, kind, name, secret_hash, status, scopes, "
                "allowed_ips, rate_limits, hint, created_at, created_by, version) "
                "SELECT 'f' || lpad(to_hex(n), 11, '0'), :workspace, 'key', 'filler ' || n, :hash, 'active', NULL, "
                "'[]', '[]', 'nim_key_filler', now(), 'bench', 1 "
                "FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n"
            ),
            {"workspace": workspace_id, "hash": DUMMY_HASH, "first": have + 1, "last": total},
        )
    with database.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE credentials"))


def new_keys(database: Database, account_id: str, cost: HashingCost, count: int) -> list[str]:
    hasher, operator = SecretHasher(cost), Actor.operator()
    made = []
    for index in range(count):
        issued = keys.create_key(database, hasher, operator, account_id, KeyRequest(f"k{index}", rate_limits=UNLIMITED))
        assert issued.plaintext is not None
        made.append(issued.plaintext)
    return made


def first_requests(base: str, presented: list[str]) -> tuple[float, float]:
    """(keys verified per second, median latency in ms) for first requests, 8 at a time."""
    latencies: list[float] = []

    async def run() -> float:
        gate = asyncio.Semaphore(8)
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:

            async def one(key: str) -> None:
                async with gate:
                    started = time.perf_counter()
                    answer = await client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
                    assert answer.status_code == 200, answer.text
                    latencies.append((time.perf_counter() - started) * 1000)

            began = time.perf_counter()
            await asyncio.gather(*(one(key) for key in presented))
            return time.perf_counter() - began

    elapsed = asyncio.run(run())
    return len(presented) / elapsed, statistics.median(latencies)


def throughput(bases: list[str], key: str) -> list[float]:
    """Median requests per second of each server, the servers taking turns round by round (so that a change in the
    machine's load hits all of them alike)."""
    auth = {"Authorization": f"Bearer {key}"}
    for base in bases:
        wrk(f"{base}/v1/me", 2, CONNECTIONS, auth)  # warm up
    rates: list[list[float]] = [[] for _ in bases]
    for _ in range(ROUNDS):
        for index, base in enumerate(bases):
            run = wrk(f"{base}/v1/me", SECONDS, CONNECTIONS, auth)
            assert run.non_2xx == 0, "the key was refused during the benchmark"
            rates[index].append(run.requests_per_second)
    return [statistics.median(rate) for rate in rates]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def revoke_delays(env: dict[str, str], folder: Path, database: Database, account_id: str, label: str) -> list[float]:
    """For REVOCATIONS keys cached by A: milliseconds from B's answer to a revoke until the start of A's first refused
    request, with A asked in a tight loop from before the revoke is sent (negative: A refused before B answered)."""
    presented = new_keys(database, account_id, CHEAPEST, REVOCATIONS)
    ids = {key: key.split("_")[2] for key in presented}  # nim_key_<public id>_<secret and checksum>
    delays = []
    with ExitStack() as stack:
        a = stack.enter_context(uvicorn_process(FACTORY, env, folder / f"{label}-a.log"))
        b = stack.enter_context(uvicorn_process(FACTORY, env, folder / f"{label}-b.log"))
        with httpx.Client(base_url=a, timeout=30) as client_a, httpx.Client(base_url=b, timeout=30) as admin:
            page = admin.get("/login")
            csrf_form = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            signed = admin.post("/login", data={"email": "bench@example.com", "password": PASSWORD,
                                                "csrf_token": csrf_form})  # fmt: skip
            assert signed.status_code == 303, signed.text
            csrf = {"X-CSRF-Token": admin.get("/api/session").json()["csrf_token"]}
            for key in presented:  # all cached by A first: each refusal later spends A's failure budget per address
                warm = client_a.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
                assert warm.status_code == 200, warm.text
            for key in presented:
                auth = {"Authorization": f"Bearer {key}"}
                answer: dict[str, float] = {}

                def revoke(key: str = key, answer: dict[str, float] = answer) -> None:
                    revoked = admin.post(f"/api/workspaces/{account_id}/keys/{ids[key]}/revoke", headers=csrf)
                    answer["at"] = time.perf_counter()
                    assert revoked.status_code == 200, revoked.text

                revoker = threading.Thread(target=revoke)
                began = time.perf_counter()
                revoker.start()
                while True:
                    started = time.perf_counter()
                    if client_a.get("/v1/me", headers=auth).status_code == 401:
                        break
                    assert started - began < 5, "A never refused the revoked key"
                revoker.join()
                delays.append((started - answer["at"]) * 1000)
    return delays


def lookup_ms(database: Database) -> float:
    """Median time of the store lookup a first request makes: a credential row by public id."""
    with database.read() as session:
        ids = list(session.scalars(text("SELECT public_id FROM credentials ORDER BY random() LIMIT 200")))
    timings = []
    with database.read() as session:
        for public_id in ids:
            started = time.perf_counter()
            session.execute(text("SELECT * FROM credentials WHERE public_id = :id"), {"id": public_id}).one()
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    require_wrk()
    postgres_url, redis_url = os.environ["BENCH_POSTGRES_URL"], os.environ["BENCH_REDIS_URL"]
    folder = scratch_dir("scale")
    database = Database(postgres_url)
    migrate.upgrade(database)
    operator = Actor.operator()
    account_id = workspaces.create_workspace(database, operator, "Benchmark")
    workspaces.add_user(database, SecretHasher(CHEAPEST), operator, "bench@example.com", PASSWORD, account_id, "owner")
    with database.read() as session:
        workspace_id = session.scalar(text("SELECT id FROM workspaces WHERE account_id = :a"), {"a": account_id})
    assert isinstance(workspace_id, int)
    cached_key = new_keys(database, account_id, CHEAPEST, 1)[0]
    base_env = {
        "TOKEN_BROKER_DATABASE_URL": postgres_url,
        "TOKEN_BROKER_SECRET_KEY": secrets.token_urlsafe(32),
        "TOKEN_BROKER_WEBHOOK_WORKER": "off",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    rows: list[tuple[str, str]] = []
    ratios: list[tuple[str, float, float | None]] = []
    for size in SIZES:
        started = time.monotonic()
        fill(database, workspace_id, size)
        print(f"store filled to {size:,} credentials in {time.monotonic() - started:.1f} s", flush=True)
        production = new_keys(database, account_id, Settings.from_env({}).hashing, FRESH_KEYS)
        cheapest = new_keys(database, account_id, CHEAPEST, FRESH_KEYS)
        variants = {
            "local": base_env,
            "quiet": {**base_env, "TOKEN_BROKER_LOG_LEVEL": "warning"},
            "redis": {**base_env, "TOKEN_BROKER_REDIS_URL": redis_url},
        }
        with ExitStack() as stack:
            bases = [
                stack.enter_context(uvicorn_process(FACTORY, env, folder / f"{name}-{size}.log"))
                for name, env in variants.items()
            ]
            local, quiet, shared = throughput(bases, cached_key)
            slow_rate, slow_ms = first_requests(bases[0], production)
            fast_rate, fast_ms = first_requests(bases[0], cheapest)
        measured = [
            (f"(1) {size:,}: GET /v1/me, cached key, local limits", f"{local:,.0f} req/s"),
            (f"(1q) {size:,}: (1) without the request log (level warning)", f"{quiet:,.0f} req/s"),
            (f"(1r) {size:,}: (1) with limits shared in Redis", f"{shared:,.0f} req/s"),
            (f"(2) {size:,}: first requests, production argon2", f"{slow_rate:,.1f} keys/s, {slow_ms:.0f} ms median"),
            (f"(2) {size:,}: first requests, cheapest argon2", f"{fast_rate:,.0f} keys/s, {fast_ms:.1f} ms median"),
            (f"(2s) {size:,}: the store lookup of a first request", f"{lookup_ms(database):.2f} ms median"),
        ]
        print("\n".join(f"{label}: {value}" for label, value in measured), flush=True)
        rows += measured
        ratios += [(f"(1)/(1q) at {size:,}", local / quiet, None), (f"(1r)/(1) at {size:,}", shared / local, None)]
    for label, listen in (("LISTEN/NOTIFY", "on"), ("polling only", "off")):
        env = {**base_env, "TOKEN_BROKER_REDIS_URL": redis_url, "TOKEN_BROKER_LISTEN_NOTIFY": listen}
        delays = revoke_delays(env, folder, database, account_id, listen)
        rows.append(
            (
                f"(3) revoke on B -> refused on A, {label}",
                f"median {statistics.median(delays):.1f} ms, p90 {percentile(delays, 0.9):.1f} ms, "
                f"p99 {percentile(delays, 0.99):.1f} ms, max {max(delays):.1f} ms after B answered; "
                f"before B answered: {sum(delay < 0 for delay in delays)}/{len(delays)}",
            )
        )
    rows.append(("rounds x seconds", f"{ROUNDS} x {SECONDS}, {CONNECTIONS} connections, one worker"))
    database.dispose()
    report("scale", rows, ratios)


if __name__ == "__main__":
    main()
