"""`scripts/bench speed`: every figure of the speed aims, each against a bare Starlette app measured in the same run.

scripts/bench starts a throwaway PostgreSQL and Redis and passes their URLs (BENCH_POSTGRES_URL, BENCH_REDIS_URL).

On SQLite, each server one uvicorn worker pinned to core 0, wrk (16 connections) pinned to core 1, the servers taking
turns round by round so that a change in the machine's load hits all alike:
  bare Starlette GET /me (the same JSON as /v1/me) and form POST (benchmarks/bare.py), no middleware, no work;
  the app as `serve` runs it (token_broker.server:app_from_env, JSON request log at level info): the metadata
  document, GET /v1/me with a cached key, /oauth/introspect of an active token, refresh grants (real rotation chains);
  the same app at TOKEN_BROKER_LOG_LEVEL=warning, and with rate limits shared in Redis: GET /v1/me.
On PostgreSQL, not pinned (the store and the workers share the machine): refresh grants with one worker and with four.
Webhook fan-out, PostgreSQL: signed deliveries a second from one and from two delivery workers
(`python -m token_broker.webhooks.worker`) to a local receiver that answers 204 at once (benchmarks/receiver.py).
Prints the figures, the ratios and the aims; asserts nothing but that the runs themselves worked. A ratio of two
figures measured in the same rounds is judged on the median of its per-round ratios (each round's two figures measured
back to back, under the same load: benchmarks/rounds.py); the ratio of the figures' medians and each round's ratio are
printed beside it. On SQLite, each server's CPU per request is measured too (from /proc), a view of the same cost
that the time the machine takes a core away does not move.
BENCH_ONLY (figure names as printed, or phases: sqlite, postgres, webhooks; comma-separated) measures only those,
e.g. BENCH_ONLY="bare POST,introspect" or BENCH_ONLY=sqlite,postgres.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode

import httpx

from benchmarks.common import (
    WrkResult,
    receiver_process,
    require_wrk,
    scratch_dir,
    seed_webhook_work,
    serve_process,
    uvicorn_server,
    wrk,
)
from benchmarks.cpu import postmaster_pid, tree_cpu_seconds
from benchmarks.rounds import PairedRatio, Rounds, cpu_us_per_request, paired_ratio
from token_broker.config import HashingCost, Settings
from token_broker.credentials import SecretHasher
from token_broker.services import clients, keys, tokens, verification, workspaces
from token_broker.services.actors import Actor
from token_broker.services.connections import open_connection
from token_broker.services.keys import KeyRequest
from token_broker.store import migrate
from token_broker.store.database import Database
from token_broker.store.models import Workspace
from token_broker.store.oauth_models import OAuthClient
from token_broker.webhooks.delivery_worker import DEFAULT_CONCURRENCY

SECONDS = int(os.environ.get("BENCH_SECONDS", "6"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "400"))
HOOKS = 10  # deliveries per event
# deliveries in flight per worker; the worker's default unless set
CONCURRENCY = os.environ.get("BENCH_WEBHOOK_CONCURRENCY", str(DEFAULT_CONCURRENCY))
WORKER_COUNTS = tuple(int(n) for n in os.environ.get("BENCH_WEBHOOK_WORKERS", "1,2").split(","))
# BENCH_ONLY: a comma-separated list of figure names (as printed, "webhooks" for the fan-out) to measure; unset: all.
ONLY = frozenset(name.strip() for name in os.environ.get("BENCH_ONLY", "").split(",") if name.strip())
CONNECTIONS = 16
TOKENS_PER_RUN = 3 * CONNECTIONS  # wrk may ask for a connection's next request before the answer refilling the pool
CHEAPEST = HashingCost(time_cost=1, memory_kib=1024, parallelism=1)
SECRET_KEY = "bench-secret-key-" + "x" * 32
CALLBACK = "https://zapier.com/dashboard/auth/oauth/return/App1CLIAPI/"
UNLIMITED = ["999999999/minute"]
FACTORY = "token_broker.server:app_from_env"
HERE = Path(__file__).resolve().parent
AIMS = {"me": 0.70, "log": 0.90, "introspect": 0.50, "refresh": 0.15, "scale": 3.0, "redis": 0.90}


@dataclass
class Store:
    url: str
    account_id: str
    key: str
    client_id: str
    client_secret: str
    access: str
    refresh: list[str]


def prepare(url: str, refresh_count: int) -> Store:
    database = Database(url)
    migrate.upgrade(database)
    settings = Settings.from_env({"TOKEN_BROKER_SECRET_KEY": SECRET_KEY})
    operator = Actor.operator()
    account_id = workspaces.create_workspace(database, operator, "Benchmark")
    workspaces.add_user(database, SecretHasher(CHEAPEST), operator, "bench@example.com", "bench-password",
                        account_id, "owner")  # fmt: skip
    issued = keys.create_key(database, SecretHasher(settings.hashing), operator, account_id,
                             KeyRequest(name="bench", rate_limits=UNLIMITED))  # fmt: skip
    assert issued.plaintext is not None
    client = clients.register_client(database, operator, "zapier", [CALLBACK])
    lifetimes = tokens.TokenLifetimes.of(settings.access_seconds(), 90, SECRET_KEY)
    refresh, access = [], ""
    with database.write() as session:
        row = session.query(OAuthClient).filter_by(client_id=client.client_id).one()
        workspace = session.query(Workspace).filter_by(account_id=account_id).one()
        for _ in range(refresh_count + 1):
            made = open_connection(session, row, workspace, "bench", ["links:read"], 3600, lifetimes.refresh)
            refresh.append(made.refresh_token)
            access = made.access_token
    database.dispose()
    return Store(url, account_id, issued.plaintext, client.client_id, client.client_secret, access, refresh)


def app_env(store: Store, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "TOKEN_BROKER_DATABASE_URL": store.url,
        "TOKEN_BROKER_SECRET_KEY": SECRET_KEY,
        "TOKEN_BROKER_TOKEN_RATE_LIMIT": "999999999/minute",
        "PYTHONPATH": str(HERE.parent),
        **(extra or {}),
    }


class Chains:
    """Refresh tokens handed out a run's worth at a time: each token is presented in one run only."""

    def __init__(self, store: Store, folder: Path) -> None:
        self.store, self.folder, self.used = store, folder, 0

    def run(self, base: str) -> WrkResult:
        pool = self.store.refresh[self.used : self.used + TOKENS_PER_RUN]
        assert len(pool) == TOKENS_PER_RUN, "not enough refresh tokens prepared"
        self.used += TOKENS_PER_RUN
        path = self.folder / f"refresh-{secrets.token_hex(4)}.txt"
        path.write_text("\n".join(pool) + "\n")
        return wrk(base, SECONDS, CONNECTIONS, script=HERE / "refresh.lua",
                   script_args=(str(path), self.store.client_id, self.store.client_secret))  # fmt: skip


def wanted(name: str) -> bool:
    return not ONLY or name in ONLY or _phase_of(name) in ONLY


PHASES = ("sqlite", "postgres", "webhooks")


def _phase_of(name: str) -> str:
    """A figure's phase, which BENCH_ONLY may name instead of its figures: sqlite, postgres or webhooks."""
    if name == "webhooks":
        return "webhooks"
    return "postgres" if name.startswith("refresh pg") else "sqlite"


def take_turns(runs: dict[str, Callable[[], WrkResult]], servers: dict[str, int] | None = None) -> Rounds:
    """Requests per second of each run (of those BENCH_ONLY names) round by round, the runs taking turns; for a run
    whose server's process id `servers` gives, also that server's CPU per request in each round."""
    runs = {name: run for name, run in runs.items() if wanted(name)}
    servers = {name: pid for name, pid in (servers or {}).items() if name in runs}
    rounds = Rounds({name: [] for name in runs}, {name: [] for name in servers})
    for _ in range(ROUNDS):
        for name, run in runs.items():
            pid = servers.get(name)
            before = tree_cpu_seconds(pid) if pid is not None else 0.0
            result = run()
            if pid is not None:
                rounds.cpu_us[name].append(cpu_us_per_request(tree_cpu_seconds(pid) - before, result.requests))
            if result.non_2xx:
                raise SystemExit(f"{name}: {result.non_2xx} requests were refused during the benchmark")
            rounds.rates[name].append(result.requests_per_second)
        print("  round: " + ", ".join(_round_figure(rounds, name) for name in runs), flush=True)
    return rounds


def _round_figure(rounds: Rounds, name: str) -> str:
    cpu = f" ({rounds.cpu_us[name][-1]:,.0f} µs CPU a request)" if name in rounds.cpu_us else ""
    return f"{name} {rounds.rates[name][-1]:,.0f}{cpu}"


SQLITE_FIGURES = ("bare GET", "metadata", "me", "me quiet", "me redis", "bare POST", "introspect", "refresh")


def sqlite_figures(folder: Path, redis_url: str) -> Rounds:
    store = prepare(f"sqlite:///{folder / 'bench.db'}", TOKENS_PER_RUN * ROUNDS)
    auth = {"Authorization": f"Bearer {store.key}"}
    client = {"client_id": store.client_id, "client_secret": store.client_secret}
    form_body = urlencode({"grant_type": "refresh_token", "refresh_token": store.refresh[0], **client})
    introspection = urlencode({"token": store.access, **client})
    chains = Chains(store, folder)
    with ExitStack() as stack:
        bare, bare_pid = stack.enter_context(uvicorn_server("benchmarks.bare:app", {}, folder / "bare.log"))
        app, app_pid = stack.enter_context(uvicorn_server(FACTORY, app_env(store), folder / "app.log"))
        quiet, quiet_pid = stack.enter_context(
            uvicorn_server(FACTORY, app_env(store, {"TOKEN_BROKER_LOG_LEVEL": "warning"}), folder / "quiet.log")
        )
        shared, shared_pid = stack.enter_context(
            uvicorn_server(FACTORY, app_env(store, {"TOKEN_BROKER_REDIS_URL": redis_url}), folder / "redis.log")
        )
        for base in (app, quiet, shared):
            wrk(f"{base}/v1/me", 2, CONNECTIONS, auth)  # warm up: the key's one argon2 verification, caches
        wrk(f"{bare}/me", 2, CONNECTIONS)
        return take_turns(
            {
                "bare GET": lambda: wrk(f"{bare}/me", SECONDS, CONNECTIONS),
                "metadata": lambda: wrk(f"{app}/.well-known/oauth-authorization-server", SECONDS, CONNECTIONS),
                "me": lambda: wrk(f"{app}/v1/me", SECONDS, CONNECTIONS, auth),
                "me quiet": lambda: wrk(f"{quiet}/v1/me", SECONDS, CONNECTIONS, auth),
                "me redis": lambda: wrk(f"{shared}/v1/me", SECONDS, CONNECTIONS, auth),
                "bare POST": lambda: wrk(
                    bare, SECONDS, CONNECTIONS, script=HERE / "form.lua", script_args=("/form", form_body)
                ),
                "introspect": lambda: wrk(
                    app,
                    SECONDS,
                    CONNECTIONS,
                    script=HERE / "form.lua",
                    script_args=("/oauth/introspect", introspection),
                ),
                "refresh": lambda: chains.run(app),
            },
            servers={
                "bare GET": bare_pid,
                "metadata": app_pid,
                "me": app_pid,
                "me quiet": quiet_pid,
                "me redis": shared_pid,
                "bare POST": bare_pid,
                "introspect": app_pid,
                "refresh": app_pid,
            },
        )


def postgres_refresh(folder: Path, postgres_url: str) -> Rounds:
    store = prepare(postgres_url, 2 * TOKENS_PER_RUN * ROUNDS)
    chains = Chains(store, folder)
    env = app_env(store, {"TOKEN_BROKER_WEBHOOK_WORKER": "off"})
    server = postmaster_pid(postgres_url)
    spent: dict[str, list[float]] = {}

    def measured(name: str, base: str, app_pid: int) -> WrkResult:
        """The run, and the CPU seconds its app and PostgreSQL used (the store's own background work included)."""
        app, store = tree_cpu_seconds(app_pid), tree_cpu_seconds(server)
        result = chains.run(base)
        app, store = tree_cpu_seconds(app_pid) - app, tree_cpu_seconds(server) - store
        totals = spent.setdefault(name, [0.0, 0.0, 0.0])
        totals[0] += result.requests_per_second * SECONDS
        totals[1] += app
        totals[2] += store
        return result

    with ExitStack() as stack:
        one, one_pid = stack.enter_context(serve_process(env, folder / "pg-one.log"))
        four, four_pid = stack.enter_context(serve_process(env, folder / "pg-four.log", workers=4))
        rates = take_turns(
            {
                "refresh pg x1": lambda: measured("refresh pg x1", one, one_pid),
                "refresh pg x4": lambda: measured("refresh pg x4", four, four_pid),
            }
        )
    for name, (count, app, store) in spent.items():
        per = 1000 / max(count, 1)
        print(f"  {name}: CPU per refresh {app * per:.2f} ms in the app, {store * per:.2f} ms in PostgreSQL; "
              f"CPU used {(app + store) / (ROUNDS * SECONDS):.2f} cores of {os.cpu_count()}")  # fmt: skip
    return rates


def webhook_rate(folder: Path, postgres_url: str, workers: int) -> float:
    """Signed deliveries a second from `workers` delivery workers: EVENTS events, each to HOOKS hooks."""
    database = Database(postgres_url)
    migrate.upgrade(database)  # already done when the refresh phase ran first
    settings = replace(Settings.from_env({}), database_url=postgres_url, secret_key=SECRET_KEY,
                       hashing=CHEAPEST, webhook_allow_hosts=("127.0.0.1",))  # fmt: skip
    operator = Actor.operator()
    account_id = workspaces.create_workspace(database, operator, f"Hooks {workers}")
    hasher = SecretHasher(CHEAPEST)
    issued = keys.create_key(database, hasher, operator, account_id, KeyRequest(name="hooks", rate_limits=UNLIMITED))
    assert issued.plaintext is not None
    owner = verification.verify(database, hasher, issued.plaintext)
    total = EVENTS * HOOKS
    with ExitStack() as stack:
        receiver, receiver_pid = stack.enter_context(receiver_process(folder / f"rx-{workers}.log"))
        postmaster = postmaster_pid(postgres_url)
        seed_webhook_work(database, owner, account_id, receiver, settings, HOOKS, EVENTS)
        env = {**os.environ, "TOKEN_BROKER_DATABASE_URL": postgres_url, "TOKEN_BROKER_SECRET_KEY": SECRET_KEY,
               "TOKEN_BROKER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1", "PYTHONPATH": str(HERE.parent)}  # fmt: skip
        command = [
            sys.executable,
            "-m",
            "token_broker.webhooks.worker",
            "--poll-seconds",
            "0.05",
            "--concurrency",
            CONCURRENCY,
        ]
        logs = [stack.enter_context((folder / f"worker-{workers}-{n}.log").open("w")) for n in range(workers)]
        processes = [subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT) for log in logs]
        sides = {"workers": [process.pid for process in processes], "PostgreSQL": [postmaster],
                 "receiver": [receiver_pid]}  # fmt: skip
        started: tuple[int, dict[str, float]] | None = None  # deliveries and CPU seconds once deliveries began
        try:
            deadline = (
                time.monotonic() + 300 + total / 10
            )  # generous: a busy machine slows it, the rate says by how much
            while True:
                seen = httpx.get(f"{receiver}/count", timeout=10).json()
                if started is None and seen["count"]:  # workers' start-up (imports) left out
                    started = seen["count"], _cpu(sides)
                if seen["count"] >= total:
                    assert started is not None
                    spent = {side: cpu - started[1][side] for side, cpu in _cpu(sides).items()}
                    count = max(1, seen["count"] - started[0])
                    print(f"  webhooks x{workers}: CPU per delivery " + ", ".join(
                        f"{side} {1000 * cpu / count:.2f} ms" for side, cpu in spent.items()), flush=True)  # fmt: skip
                    break
                if seen["rejected"]:
                    raise SystemExit(f"webhooks: the receiver rejected {seen['rejected']} deliveries (bad signatures)")
                if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
                    raise SystemExit(f"webhooks: {seen['count']} of {total} deliveries arrived")
                time.sleep(0.2)
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
    database.dispose()
    return float((total - 1) / max(seen["last"] - seen["first"], 1e-9))


def _cpu(sides: dict[str, list[int]]) -> dict[str, float]:
    return {side: sum(tree_cpu_seconds(pid) for pid in pids) for side, pids in sides.items()}


def main() -> None:
    if any(wanted(name) for name in (*SQLITE_FIGURES, "refresh pg x1", "refresh pg x4")):
        require_wrk()
    known = {*SQLITE_FIGURES, "refresh pg x1", "refresh pg x4", *PHASES}
    unknown = ONLY - known
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown name(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(known))}")
    postgres_url, redis_url = os.environ["BENCH_POSTGRES_URL"], os.environ["BENCH_REDIS_URL"]
    folder = scratch_dir("speed")
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.1f}", flush=True)
    phases: list[Rounds] = []  # each phase's figures taking turns in the same rounds
    if any(wanted(name) for name in SQLITE_FIGURES):
        phases.append(sqlite_figures(folder, redis_url))
    if wanted("refresh pg x1") or wanted("refresh pg x4"):
        phases.append(postgres_refresh(folder, postgres_url))
    deliveries = {n: webhook_rate(folder, postgres_url, n) for n in WORKER_COUNTS} if wanted("webhooks") else {}
    r = {name: rate for rounds in phases for name, rate in rounds.medians().items()}
    cpu = {name: us for rounds in phases for name, us in rounds.cpu_medians().items()}
    rows = [(name, f"{rate:,.0f} req/s" + (f"; server CPU {cpu[name]:,.0f} µs a request" if name in cpu else ""))
            for name, rate in r.items()]  # fmt: skip
    rows += [(f"webhook deliveries, {n} worker(s) x {CONCURRENCY} in flight", f"{rate:,.0f} /s")
             for n, rate in deliveries.items()]  # fmt: skip
    rows.append(("rounds x seconds", f"{ROUNDS} x {SECONDS}, {CONNECTIONS} connections; load average "
                                     f"{load:.1f} at start, {os.getloadavg()[0]:.1f} at end"))  # fmt: skip
    paired = [
        # against a bare baseline, the CPU view too: a request's CPU excludes the time the machine took the core away
        paired_ratio(label, top, bottom, rounds, aim, with_cpu=bottom.startswith("bare"))
        for label, top, bottom, aim in PAIRS
        for rounds in phases
        if top in rounds.rates and bottom in rounds.rates
    ]
    others: list[tuple[str, float, float | None]] = []
    if deliveries:
        first = deliveries[WORKER_COUNTS[0]]
        others += [(f"webhooks {n} workers / {WORKER_COUNTS[0]}", rate / first, None) for n, rate in deliveries.items()]
        others.append((f"webhooks {WORKER_COUNTS[0]} worker / 1,000 a second", first / 1000, 1.0))
    print_report(rows, paired, others)
    # as before: the ratios of the medians (rounds mixed); the paired ones beside them
    ratios = {ratio.label: round(ratio.of_rates, 4) for ratio in paired}
    ratios |= {label: round(value, 4) for label, value, _ in others}
    by_rounds = {ratio.label: round(ratio.paired, 4) for ratio in paired}
    print(json.dumps({"benchmark": "speed", "ratios": ratios, "paired": by_rounds}))
    print(
        json.dumps(
            {
                "rates": r,
                "webhooks": deliveries,
                "paired": by_rounds,
                "per_round": {ratio.label: [round(value, 4) for value in ratio.per_round] for ratio in paired},
                "cpu_us_per_request": {name: round(us, 1) for name, us in cpu.items()},
                "cpu_ratios": {ratio.label: round(ratio.cpu, 4) for ratio in paired if ratio.cpu is not None},
            }
        )
    )


# label, numerator, denominator, aim (None: information)
PAIRS: list[tuple[str, str, str, float | None]] = [
    ("metadata / bare GET", "metadata", "bare GET", None),
    ("/v1/me / bare GET", "me", "bare GET", AIMS["me"]),
    ("/v1/me / same at warning (1 - log+metrics cost)", "me", "me quiet", AIMS["log"]),
    ("/v1/me Redis limits / local limits", "me redis", "me", AIMS["redis"]),
    ("introspect / bare POST", "introspect", "bare POST", AIMS["introspect"]),
    ("refresh (SQLite, 1 worker) / bare POST", "refresh", "bare POST", AIMS["refresh"]),
    ("refresh PostgreSQL 4 workers / 1 worker", "refresh pg x4", "refresh pg x1", AIMS["scale"]),
]


def print_report(rows: list[tuple[str, str]], paired: list[PairedRatio],
                 others: list[tuple[str, float, float | None]]) -> None:  # fmt: skip
    print("\nspeed")
    width = max(len(label) for label, _ in rows + [(label, "") for label, _, _ in others])
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")
    if paired:
        print("ratios of figures measured in the same rounds. The aim is judged on the median of paired rounds: each "
              "round's figure over the\nsame round's baseline, measured back to back, so that the drift of the "
              "machine's load between rounds cancels.\nMedian of rates: the two figures' medians over rounds divided "
              "(rounds mixed). CPU per request: the server's CPU time\n(from /proc) per request answered, which the "
              "time the machine takes the core away does not count.")  # fmt: skip
        for ratio in paired:
            print("\n".join(ratio.lines()))
    for label, value, aim in others:
        verdict = "" if aim is None else f"  ({'meets' if value >= aim else 'BELOW'} the aim of {aim})"
        print(f"  {label.ljust(width)}  {value:.3f}{verdict}")


if __name__ == "__main__":
    main()
