"""The delivery worker's batches: one send-gate transaction for many requests, one write for many attempts.

- A hook deleted while a batch of requests to it and to another hook is in flight: no request to it starts after
  the deletion commits, measured on the sender (the moment the gate let each request be written) and checked
  against what a real receiver got; the other hook's deliveries all go through.
- The batch gate itself: while it holds a batch's hooks, a disabling waits; once it commits, the next batch lets
  none of that hook's requests through and all of the other hook's.
- The batch record: many attempts in one call, a claim lost meanwhile reported as such; and a worker killed with
  SIGKILL after its requests were sent, before their answers were recorded: every one is sent again by the next
  worker, none lost.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from tests.webhooks.conftest import FAST, make_events, run_worker
from tests.webhooks.receivers import Answer, Received, receiver
from tests.webhooks.test_delivery import settled, statuses
from tests.webhooks.test_worker_processes import all_event_ids, count, wait, worker_process
from token_broker.config import Settings
from token_broker.services import deliveries, webhook_subscriptions
from token_broker.services.verification import VerifiedCredential
from token_broker.store.database import Database
from token_broker.store.hook_models import Hook, WebhookAttempt, WebhookDelivery
from token_broker.store.models import utcnow
from token_broker.webhooks import transport

LEASE = timedelta(seconds=60)
LEASE_SECONDS = 8.0  # the killed worker's attempts (6 s each at most) must not time out before the kill


class StartClock(transport.Client):
    """The worker's own client, noting for each request (path and webhook-id) the moment the send gate let it be
    written: taken inside the request's passage right after the gate's decision, before the first byte goes out."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[tuple[str, str, float]] = []

    async def send(
        self, to: transport.Destination, head: bytes, body: bytes, passage: transport.Passage | None = None,
        deadline: float | None = None,
    ) -> transport.Answer:  # fmt: skip
        noted = (request_path(to), header(head, b"webhook-id"))
        clock = self

        class Noting:
            async def opened(self) -> None:
                if passage is not None:
                    await passage.opened()
                clock.started.append((*noted, time.monotonic()))

            def written(self) -> None:
                if passage is not None:
                    passage.written()

        return await super().send(to, head, body, Noting(), deadline)


def request_path(to: transport.Destination) -> str:
    return to.head.split(b" ", 2)[1].decode("ascii")


def header(head: bytes, name: bytes) -> str:
    [value] = [line.split(b": ", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(name + b":")]
    return value.decode("ascii")


def test_no_request_to_a_hook_starts_after_its_deletion_commits_while_a_batch_is_in_flight(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    events = 120
    clock = StartClock()
    committed: list[float] = []
    received_at_commit: list[int] = []

    def make_client() -> transport.Client:
        return clock

    with receiver(lambda _request, _index: Answer(204, delay=0.01)) as target:
        doomed = webhook_subscriptions.create_hook(database, owner, "link.created", target.url + "/a", settings)
        webhook_subscriptions.create_hook(database, owner, "link.created", target.url + "/b", settings)
        make_events(database, owner, events)

        def delete_after_some_deliveries() -> None:
            target.wait_for(30, timeout=120)  # batches of both hooks are in flight now
            webhook_subscriptions.delete_hook(database, owner, doomed.view.id)
            committed.append(time.monotonic())
            received_at_commit.append(len(target.received()))

        deleter = threading.Thread(target=delete_after_some_deliveries)
        deleter.start()
        worker = run_worker(
            database, settings, lambda: bool(committed) and settled(database), timeout=180, make_client=make_client,
            concurrency=32,
        )  # fmt: skip
        deleter.join()
        received = target.received()
    assert committed, "the deletion did not happen"

    def to(path: str, requests: list[Received]) -> set[str]:
        return {request.webhook_id for request in requests if request.path.endswith(path)}

    late = [webhook_id for path, webhook_id, at in clock.started if path.endswith("/a") and at >= committed[0]]
    assert late == [], f"{len(late)} requests to the deleted hook started after the deletion committed"
    started_to_doomed = {webhook_id for path, webhook_id, _ in clock.started if path.endswith("/a")}
    assert to("/a", received) <= started_to_doomed  # every arrival was measured
    assert 1 <= len(to("/a", received)) < events
    assert to("/b", received) == set(all_event_ids(database))  # the other hook lost nothing to the deletion
    assert received_at_commit[0] < 2 * events  # deleted mid-run, not after
    assert worker.gate.rounds >= 1 and worker.recorder.batches >= 1
    doomed_id = _hook_row_id(database, doomed.view.id)
    with database.read() as session:
        found = set(session.scalars(select(WebhookDelivery.status).where(WebhookDelivery.hook_id == doomed_id)))
    assert "cancelled" in found and found <= {"succeeded", "cancelled"}  # sent before it may still be recorded lost


def _hook_row_id(database: Database, public_id: str) -> int:
    with database.read() as session:
        return int(session.scalars(select(Hook.id).where(Hook.public_id == public_id)).one())


def test_the_batch_gate_holds_every_hook_of_the_batch_until_it_lets_go(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    doomed = webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/a", settings)
    webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/b", settings)
    make_events(database, owner, 3)
    now = utcnow()
    _, jobs = deliveries.take_work(database, "worker-a", now, 100, 100, LEASE)
    assert len(jobs) == 6
    doomed_id = _hook_row_id(database, doomed.view.id)
    deleted = threading.Event()

    def delete() -> None:
        webhook_subscriptions.delete_hook(database, owner, doomed.view.id)
        deleted.set()

    with deliveries.send_gate_many(database, jobs, utcnow()) as allowed:
        assert allowed == {job.delivery_id for job in jobs}
        deleter = threading.Thread(target=delete)
        deleter.start()
        time.sleep(0.5)  # were the deletion not held back, it would commit now (a slow machine only hides a bug)
        assert not deleted.is_set(), "the deletion committed while the batch's requests were being written"
    deleter.join(timeout=60)
    assert deleted.is_set()
    with deliveries.send_gate_many(database, jobs, utcnow()) as allowed:
        assert allowed == {job.delivery_id for job in jobs if job.hook_id != doomed_id}


def test_a_batch_of_attempts_is_recorded_in_one_call_and_a_lost_claim_says_so(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/a", settings)
    make_events(database, owner, 5)
    now = utcnow()
    _, jobs = deliveries.take_work(database, "worker-a", now, 100, 100, timedelta(seconds=30))
    assert len(jobs) == 5
    taken_over = deliveries.claim(database, "worker-b", now + timedelta(seconds=31), 1, timedelta(seconds=30))
    assert [job.delivery_id for job in taken_over] == [jobs[0].delivery_id]
    results = [deliveries.AttemptResult("succeeded", now, 3, status_code=204)] * 4
    results.append(deliveries.AttemptResult("retry", now, 3, status_code=503))
    recorded = deliveries.record_many(database, list(zip(jobs, results, strict=True)), FAST, now, random.Random(1))
    assert recorded == ["lost", "succeeded", "succeeded", "succeeded", "pending"]
    assert statuses(database) == ["delivering", "succeeded", "succeeded", "succeeded", "pending"]
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(WebhookAttempt)) == 5  # every attempt is logged


def test_a_worker_killed_between_sending_and_recording_has_every_attempt_sent_again(
    database: Database, database_url: str, settings: Settings, owner: VerifiedCredential, tmp_path: Path
) -> None:
    events = 12
    answer = threading.Event()  # the receiver holds every answer until the first worker is dead

    def responder(_request: Received, _index: int) -> Answer:
        answer.wait(60)
        return Answer(204)

    with receiver(responder) as target:
        webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, events)
        log = tmp_path / "worker.log"
        with worker_process(database_url, log, lease=LEASE_SECONDS) as first:
            target.wait_for(events, timeout=60)  # every request was sent whole and read
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        answer.set()
        with database.read() as session:
            assert session.scalar(select(func.count()).select_from(WebhookAttempt)) == 0  # nothing was recorded
        assert count(database, "delivering") == events
        with worker_process(database_url, log, lease=LEASE_SECONDS):  # takes the claims over once their lease ends
            wait(lambda: count(database, "succeeded") == events, 60 + LEASE_SECONDS, log)
        received = Counter(request.webhook_id for request in target.received())
    assert set(received) == all_event_ids(database)
    assert set(received.values()) == {2}  # each sent again after the kill: at least once, never lost
