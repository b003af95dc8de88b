"""`python -m benchmarks.webhook_cost`: what one webhook delivery costs the delivery worker, in figures a busy machine
does not move much: the worker's CPU seconds (its process, threads included, the SQLite store's work included) and its
store transactions and TCP connections, per delivery.

One in-process worker (BENCH_WEBHOOK_CONCURRENCY in flight, default 64) on a throwaway SQLite store (or on the
PostgreSQL database at the URL given as argument: `python -m benchmarks.webhook_cost postgresql+psycopg://...`)
delivers BENCH_WEBHOOK_EVENTS (default 200) events, each to 10 hooks, to the local receiver of `scripts/bench speed`
(benchmarks/receiver.py, its own process, which counts only deliveries signed with their hook's secret). Deliveries
per CPU-second is the rate one worker could reach with a core to itself; the wall-clock rate is printed too, with
the load average; on PostgreSQL also the server's CPU per delivery (all its processes).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx

from benchmarks.common import receiver_process, scratch_dir, seed_webhook_work
from benchmarks.cpu import postmaster_pid, tree_cpu_seconds
from token_broker.config import HashingCost, Settings
from token_broker.credentials import SecretHasher
from token_broker.services import deliveries, keys, verification, workspaces
from token_broker.services.actors import Actor
from token_broker.services.keys import KeyRequest
from token_broker.store import migrate
from token_broker.store.database import Database
from token_broker.webhooks import transport
from token_broker.webhooks.delivery_worker import DEFAULT_CONCURRENCY, DeliveryWorker

EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "200"))
CONCURRENCY = int(os.environ.get("BENCH_WEBHOOK_CONCURRENCY", str(DEFAULT_CONCURRENCY)))
HOOKS = 10
CHEAPEST = HashingCost(time_cost=1, memory_kib=1024, parallelism=1)
SECRET_KEY = "bench-secret-key-" + "x" * 32
HERE = Path(__file__).resolve().parent


def counting(function: Callable[..., Any], counter: list[int]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return function(*args, **kwargs)

    return counted


def main() -> None:
    folder = scratch_dir("webhook-cost")
    url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{folder / 'store.db'}"
    postmaster = postmaster_pid(url) if url.startswith("postgresql") else 0
    database = Database(url)
    migrate.upgrade(database)
    settings = replace(Settings.from_env({}), database_url=url, secret_key=SECRET_KEY, hashing=CHEAPEST,
                       webhook_allow_hosts=("127.0.0.1",))  # fmt: skip
    operator, hasher = Actor.operator(), SecretHasher(CHEAPEST)
    account_id = workspaces.create_workspace(database, operator, "Webhook cost")
    issued = keys.create_key(database, hasher, operator, account_id, KeyRequest(name="k", rate_limits=["9999/second"]))
    assert issued.plaintext is not None
    owner = verification.verify(database, hasher, issued.plaintext)
    steps = [0]
    deliveries.take_work = counting(deliveries.take_work, steps)  # type: ignore[method-assign]
    total = EVENTS * HOOKS
    with receiver_process(folder / "receiver.log") as (receiver, _pid):
        seed_webhook_work(database, owner, account_id, receiver, settings, HOOKS, EVENTS)

        async def run() -> None:
            load = os.getloadavg()[0]
            async with transport.make_client() as client, httpx.AsyncClient() as probe:
                worker = DeliveryWorker(database, settings, client, poll_seconds=0.05, concurrency=CONCURRENCY)
                wall, cpu, store_cpu = time.perf_counter(), time.process_time(), tree_cpu_seconds(postmaster)
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(worker.run_forever)
                    while (seen := (await probe.get(f"{receiver}/count")).json())["count"] < total:
                        if seen["rejected"]:
                            raise SystemExit(f"the receiver rejected {seen['rejected']} deliveries: bad signatures")
                        await anyio.sleep(0.1)  # the probe's own CPU counts as the worker's: not too often
                    tasks.cancel_scope.cancel()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                store_cpu = tree_cpu_seconds(postmaster) - store_cpu
            transactions = steps[0] + worker.gate.rounds + worker.recorder.batches
            print(f"{total} deliveries, one worker x {worker.concurrency} in flight, {database.dialect}")
            if postmaster:
                print(f"  PostgreSQL: {1000 * store_cpu / total:.2f} ms of CPU per delivery (all its processes)")
            print(f"  {total / cpu:,.0f} deliveries per CPU-second of the worker ({1000 * cpu / total:.2f} ms each)")
            print(f"  {total / wall:,.0f} deliveries a second by the clock; load average {load:.1f} at start, "
                  f"{os.getloadavg()[0]:.1f} at end")  # fmt: skip
            print(f"  {transactions / total:.3f} store transactions per delivery (claims {steps[0]}, gate rounds "
                  f"{worker.gate.rounds}, record batches {worker.recorder.batches}); "
                  f"{client.connections_opened} TCP connections")  # fmt: skip

        anyio.run(run)
    database.dispose()


if __name__ == "__main__":
    main()
