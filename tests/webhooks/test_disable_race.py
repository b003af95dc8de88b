"""Disabling a connection's hooks while hundreds of its deliveries are queued and some in flight: every request of
those hooks was completely written before the disabling transaction committed, and everything queued is cancelled.

What is measured is the promise itself, on the sender's side: the moment each request's last byte had been written
(the request's passage told it was written), noted before the worker's send gate lets go of the hook's row, against the
moment the disabling transaction had committed. A receiver's clock would also count a request written in time but
read late by a receiver that the machine did not schedule, which says nothing about the broker."""

from __future__ import annotations

import threading
import time

from sqlalchemy import update

from tests.webhooks.conftest import Partner, make_events, run_worker
from tests.webhooks.receivers import Answer, receiver
from tests.webhooks.test_batches import header
from tests.webhooks.test_delivery import settled, statuses
from token_broker.config import Settings
from token_broker.services import webhook_subscriptions
from token_broker.store.database import Database
from token_broker.store.models import utcnow
from token_broker.store.oauth_models import Connection
from token_broker.webhooks import transport


class WrittenClock(transport.Client):
    """The worker's own client, noting for each request (by webhook-id) when it had been completely written. The
    note is taken inside the request's passage, before the send gate it wraps releases the hook's row, so it
    precedes any transaction that waits for that row."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[tuple[str, float]] = []

    async def send(
        self, to: transport.Destination, head: bytes, body: bytes, passage: transport.Passage | None = None,
        deadline: float | None = None,
    ) -> transport.Answer:  # fmt: skip
        webhook_id = header(head, b"webhook-id")
        clock = self

        class Noting:
            async def opened(self) -> None:
                if passage is not None:
                    await passage.opened()

            def written(self) -> None:
                clock.written.append((webhook_id, time.monotonic()))
                if passage is not None:
                    passage.written()

        return await super().send(to, head, body, Noting(), deadline)


def test_every_request_is_written_before_the_disabling_commits(
    database: Database, settings: Settings, partner: Partner
) -> None:
    clock = WrittenClock()

    def make_client() -> transport.Client:
        return clock

    committed: list[float] = []
    with receiver(lambda _request, _index: Answer(204, delay=0.01)) as target:
        webhook_subscriptions.create_hook(database, partner.credential, "link.created", target.url, settings)
        make_events(database, partner.credential, 300)

        def disconnect_after_some_deliveries() -> None:
            target.wait_for(20, timeout=120)
            with database.write() as session:
                now = utcnow()
                session.execute(
                    update(Connection)
                    .where(Connection.id == partner.connection_id)
                    .values(status="disconnected", disconnected_at=now, disconnected_by="usr_admin")
                )
                webhook_subscriptions.disable_hooks_for_connection(session, partner.connection_id, now)
            committed.append(time.monotonic())

        disconnector = threading.Thread(target=disconnect_after_some_deliveries)
        disconnector.start()
        run_worker(
            database, settings, lambda: bool(committed) and settled(database), timeout=180, make_client=make_client
        )
        disconnector.join()
        received = {request.webhook_id for request in target.received()}
    assert committed, "the disconnect did not happen"
    late = [webhook_id for webhook_id, at in clock.written if at >= committed[0]]
    assert late == [], f"{len(late)} requests were written after the disabling committed"
    assert received <= {webhook_id for webhook_id, _ in clock.written}  # every arrival was measured
    assert 20 <= len(received) < 300
    assert "pending" not in statuses(database) and "delivering" not in statuses(database)
    assert statuses(database).count("cancelled") == 300 - statuses(database).count("succeeded")
