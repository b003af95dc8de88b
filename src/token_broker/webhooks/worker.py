"""The delivery worker's own command line: `python -m token_broker.webhooks.worker [options]` runs a worker
(`delivery_worker`) apart from the web processes, against the store in $TOKEN_BROKER_DATABASE_URL or --database-url."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from datetime import timedelta

import anyio

from token_broker.config import Settings
from token_broker.services.deliveries import RetryPolicy
from token_broker.store.database import Database
from token_broker.webhooks import transport
from token_broker.webhooks.delivery_worker import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LEASE,
    DEFAULT_POLL_SECONDS,
    REQUEST_SECONDS,
    DeliveryWorker,
)

DESCRIPTION = "Deliver webhook events to partners' hooks: sign, send, retry with backoff, disable failing hooks."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m token_broker.webhooks.worker", description=DESCRIPTION)
    parser.add_argument("--database-url", default=None, help="default: $TOKEN_BROKER_DATABASE_URL")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--poll-seconds", type=float, default=DEFAULT_POLL_SECONDS)
    parser.add_argument("--lease-seconds", type=float, default=DEFAULT_LEASE.total_seconds())
    parser.add_argument("--request-seconds", type=float, default=REQUEST_SECONDS)
    parser.add_argument("--first-retry-seconds", type=float, default=RetryPolicy.first_delay.total_seconds())
    parser.add_argument("--max-retry-seconds", type=float, default=RetryPolicy.max_delay.total_seconds())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    if args.database_url:
        settings = replace(settings, database_url=args.database_url)
    settings = settings.with_secret_key()
    policy = RetryPolicy(
        first_delay=timedelta(seconds=args.first_retry_seconds), max_delay=timedelta(seconds=args.max_retry_seconds)
    )
    database = Database(settings.database_url, **settings.pool_options())

    async def run() -> None:
        async with transport.make_client() as client:
            worker = DeliveryWorker(
                database,
                settings,
                client,
                policy=policy,
                concurrency=args.concurrency,
                poll_seconds=args.poll_seconds,
                lease=timedelta(seconds=args.lease_seconds),
                request_seconds=args.request_seconds,
            )
            print(f"webhook worker {worker.worker_id} started", flush=True)
            await worker.run_forever()

    try:
        anyio.run(run)
    except KeyboardInterrupt:
        return 0
    finally:
        database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
