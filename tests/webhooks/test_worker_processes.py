"""Delivery workers as separate processes (`python -m token_broker.webhooks.worker`): one killed with SIGKILL
mid-run loses no event once restarted; two on one store deliver each event once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from tests.webhooks.conftest import SECRET_KEY, make_events
from tests.webhooks.receivers import Answer, receiver
from token_broker.config import Settings
from token_broker.services import webhook_subscriptions
from token_broker.services.verification import VerifiedCredential
from token_broker.store.database import Database
from token_broker.store.hook_models import WebhookAttempt, WebhookDelivery
from token_broker.store.link_models import OutboxEvent


@contextmanager
def worker_process(database_url: str, log_path: Path, lease: float = 2.0) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process; its lease (and so the wait before a killed worker's claims are taken over) is short."""
    env = {
        **os.environ,
        "TOKEN_BROKER_SECRET_KEY": SECRET_KEY,
        "TOKEN_BROKER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        "TOKEN_BROKER_DATABASE_URL": database_url,
    }
    args = ["--poll-seconds", "0.05", "--lease-seconds", str(lease), "--request-seconds", str(lease * 0.75)]
    args += ["--first-retry-seconds", "0.05", "--max-retry-seconds", "0.2"]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "token_broker.webhooks.worker", "--database-url", database_url, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait(lambda: "started" in log_path.read_text() or process.poll() is not None, 30, log_path)
        assert process.poll() is None, log_path.read_text()
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait(condition: Callable[[], bool], timeout: float, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out" + (f":\n{log_path.read_text()}" if log_path else ""))
        time.sleep(0.02)


def count(database: Database, status: str) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).where(WebhookDelivery.status == status)) or 0


def all_event_ids(database: Database) -> set[str]:
    with database.read() as session:
        return set(session.scalars(select(OutboxEvent.public_id)))


def test_a_worker_killed_mid_run_loses_no_event(
    database: Database, database_url: str, settings: Settings, owner: VerifiedCredential, tmp_path: Path
) -> None:
    events = 40
    with receiver(lambda _request, _index: Answer(204, delay=0.2)) as target:
        webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, events)
        log = tmp_path / "worker.log"
        with worker_process(database_url, log) as first:
            target.wait_for(10)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        in_flight = count(database, "delivering")
        assert in_flight >= 1  # killed mid-run: claimed attempts were in flight
        assert count(database, "succeeded") < events
        with worker_process(database_url, log):
            wait(lambda: count(database, "succeeded") == events, 60, log)
        received = Counter(request.webhook_id for request in target.received())
    assert set(received) == all_event_ids(database)
    assert sum(received.values()) - events <= in_flight  # at least once; only the interrupted ones twice


def test_two_workers_on_one_store_deliver_each_event_once(
    database: Database, database_url: str, settings: Settings, owner: VerifiedCredential, tmp_path: Path
) -> None:
    events = 150
    with receiver(lambda _request, _index: Answer(204, delay=0.005)) as target:
        webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        with (
            # A long lease: a busy machine must not make a slow attempt look abandoned.
            worker_process(database_url, tmp_path / "one.log", lease=20),
            worker_process(database_url, tmp_path / "two.log", lease=20),
        ):
            make_events(database, owner, events)
            wait(lambda: count(database, "succeeded") == events, 60, tmp_path / "one.log")
            time.sleep(0.3)  # a duplicate, were there one, would arrive now
        received = Counter(request.webhook_id for request in target.received())
    assert set(received) == all_event_ids(database) and set(received.values()) == {1}
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(WebhookAttempt)) == events
        assert set(session.scalars(select(WebhookDelivery.attempts))) == {1}
