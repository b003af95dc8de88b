"""Delivery against a real receiver on 127.0.0.1: signed, retried with the same webhook-id, Retry-After honoured, 410
deletes, failing for days disables; fan-out once per (event, hook); hooks die with their connection or key."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from tests.makers import Keys
from tests.support import Team
from tests.webhooks.conftest import FAST, Partner, make_events, make_partner, run_worker
from tests.webhooks.receivers import Answer, Received, receiver
from token_broker.config import Settings
from token_broker.credentials import SecretHasher
from token_broker.errors import InvalidCredential, NotFound, ReconnectRequired
from token_broker.net import signing
from token_broker.services import deliveries, keys, links, verification, webhook_subscriptions
from token_broker.services.deliveries import RetryPolicy
from token_broker.services.verification import VerifiedCredential
from token_broker.store.database import Database
from token_broker.store.hook_models import Hook, WebhookAttempt, WebhookDelivery
from token_broker.store.link_models import OutboxEvent
from token_broker.store.models import Credential, utcnow
from token_broker.store.oauth_models import Connection
from token_broker.webhooks.delivery_worker import parse_retry_after


def statuses(database: Database) -> list[str]:
    with database.read() as session:
        return list(session.scalars(select(WebhookDelivery.status).order_by(WebhookDelivery.id)))


def delivered(database: Database, count: int) -> bool:
    return statuses(database).count("succeeded") >= count


def settled(database: Database) -> bool:
    found = statuses(database)
    return bool(found) and not {"pending", "delivering"} & set(found)


def event_ids(database: Database) -> list[str]:
    with database.read() as session:
        return list(session.scalars(select(OutboxEvent.public_id).order_by(OutboxEvent.id)))


def test_a_delivery_is_signed_with_the_hooks_secret(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    with receiver() as target:
        created = webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        [link_id] = make_events(database, owner, 1)
        run_worker(database, settings, lambda: delivered(database, 1))
        [request] = target.received()
    payload = signing.verify(created.secret, request.headers, request.body)
    assert payload["type"] == "link.created" and payload["data"]["link"]["id"] == link_id
    assert payload["account_id"] == owner.account_id and request.webhook_id == payload["id"] == event_ids(database)[0]
    assert request.headers["content-type"] == "application/json" and request.path == "/hooks/in"
    [line] = webhook_subscriptions.hook_log(database, owner.workspace_id, created.view.id)
    assert (line.attempt, line.status_code, line.outcome, line.event_id) == (1, 204, "succeeded", payload["id"])


def test_only_matching_events_of_the_workspace_reach_a_hook(
    database: Database, settings: Settings, owner: VerifiedCredential, make: Keys, hasher: SecretHasher
) -> None:
    other_key = make.workspace_key(account_id=make.team.other_account_id)
    assert other_key.plaintext is not None
    other = verification.verify(database, hasher, other_key.plaintext)
    with receiver() as target:
        webhook_subscriptions.create_hook(database, owner, "link.deleted", target.url, settings)
        webhook_subscriptions.create_hook(database, other, "link.created", target.url, settings)
        [link_id] = make_events(database, owner, 1)  # link.created in our workspace: nobody wants it
        links.delete_link(database, owner.workspace_id, link_id, source_credential_id=owner.id)
        make_events(database, other, 2)
        run_worker(database, settings, lambda: delivered(database, 3))
        received = target.received()
    types = sorted(
        json.loads(request.body)["type"] + ":" + json.loads(request.body)["account_id"] for request in received
    )
    assert types == sorted(
        [f"link.deleted:{owner.account_id}", f"link.created:{other.account_id}", f"link.created:{other.account_id}"]
    )


def test_events_from_before_a_hook_existed_are_not_sent_to_it(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    make_events(database, owner, 2)
    with receiver() as target:
        webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 1)
        run_worker(database, settings, lambda: delivered(database, 1))
        assert len(target.received()) == 1 and target.received()[0].webhook_id == event_ids(database)[2]


def test_a_500_is_retried_with_the_same_webhook_id_and_a_fresh_signature(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    def flaky(_request: Received, index: int) -> Answer:
        return Answer(500) if index < 2 else Answer(200)

    with receiver(flaky) as target:
        created = webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 1)
        run_worker(database, settings, lambda: delivered(database, 1))
        received = target.received()
    assert len(received) == 3 and len({request.webhook_id for request in received}) == 1
    for request in received:
        signing.verify(created.secret, request.headers, request.body)
    assert [
        line.outcome for line in reversed(webhook_subscriptions.hook_log(database, owner.workspace_id, created.view.id))
    ] == [
        "retry",
        "retry",
        "succeeded",
    ]
    with database.read() as session:
        hook = session.scalars(select(Hook)).one()
        assert hook.failing_since is None and hook.status == "active"


def test_a_dropped_connection_is_retried_with_the_same_webhook_id(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    with receiver(lambda _request, index: Answer(drop=index == 0)) as target:
        created = webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 1)
        run_worker(database, settings, lambda: delivered(database, 1))
        first, second = target.received()
    assert first.webhook_id == second.webhook_id == event_ids(database)[0]
    log = webhook_subscriptions.hook_log(database, owner.workspace_id, created.view.id)
    assert log[-1].outcome == "retry" and log[-1].status_code is None and log[-1].error
    assert log[0].outcome == "succeeded"


def test_retry_after_is_honoured(database: Database, settings: Settings, owner: VerifiedCredential) -> None:
    def busy(_request: Received, index: int) -> Answer:
        return Answer(503, {"Retry-After": "1"}) if index == 0 else Answer(204)

    with receiver(busy) as target:
        webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 1)
        run_worker(database, settings, lambda: delivered(database, 1))
        first, second = target.received()
    assert second.at - first.at >= 1.0  # the backoff alone would have retried after 25 to 50 ms


@pytest.mark.parametrize("status", [429, 408])
def test_429_and_408_are_retried(
    database: Database, settings: Settings, owner: VerifiedCredential, status: int
) -> None:
    with receiver(lambda _request, index: Answer(status) if index == 0 else Answer(200)) as target:
        webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 1)
        run_worker(database, settings, lambda: delivered(database, 1))
        assert len(target.received()) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 302])
def test_other_client_errors_fail_without_retry(
    database: Database, settings: Settings, owner: VerifiedCredential, status: int
) -> None:
    with receiver(lambda _request, _index: Answer(status)) as target:
        created = webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 2)
        run_worker(database, settings, lambda: settled(database))
        assert len(target.received()) == 2
    assert statuses(database) == ["failed", "failed"]
    assert webhook_subscriptions.list_hooks(database, owner)[0].status == "active"  # not yet failing for days
    with database.read() as session:
        assert session.scalars(select(Hook.failing_since)).one() is not None
    assert {
        line.status_code for line in webhook_subscriptions.hook_log(database, owner.workspace_id, created.view.id)
    } == {status}


def test_a_410_deletes_the_hook_and_cancels_what_was_queued(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    with receiver(lambda _request, _index: Answer(410)) as target:
        created = webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 5)
        run_worker(database, settings, lambda: settled(database), concurrency=1)
        assert len(target.received()) == 1
    assert sorted(statuses(database)) == ["cancelled"] * 4 + ["failed"]
    assert webhook_subscriptions.list_hooks(database, owner) == []
    with database.read() as session:
        hook = session.scalars(select(Hook)).one()
        assert (hook.status, hook.end_reason) == ("deleted", "gone")
    with pytest.raises(NotFound):
        webhook_subscriptions.delete_hook(database, owner, created.view.id)
    make_events(database, owner, 1)
    assert deliveries.fan_out(database, utcnow()) == 1 and len(statuses(database)) == 5  # no new delivery


def test_a_hook_failing_continuously_for_days_is_disabled(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    policy = replace(FAST, disable_after=timedelta(milliseconds=400))
    with receiver(lambda _request, _index: Answer(503)) as target:
        created = webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 3)
        run_worker(database, settings, lambda: settled(database), policy=policy)
        made = len(target.received())
    [view] = webhook_subscriptions.list_hooks(database, owner)
    assert (view.status, view.status_reason) == ("disabled", "failing")
    assert set(statuses(database)) == {"cancelled"}
    # How many attempts fit in 400 ms depends on the machine; the rule itself is checked on an explicit clock below.
    assert made >= 1 and len(webhook_subscriptions.hook_log(database, owner.workspace_id, created.view.id)) == made


def test_a_hook_is_disabled_once_it_has_failed_for_disable_after_and_not_before(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    policy = RetryPolicy(first_delay=timedelta(seconds=10), max_delay=timedelta(seconds=10),
                         give_up_after=timedelta(days=1), disable_after=timedelta(seconds=30))  # fmt: skip
    webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/a", settings)
    make_events(database, owner, 2)
    now = utcnow()
    deliveries.fan_out(database, now)
    for step in range(4):  # failing since 0 s; at 10 and 20 s still active; at 30 s disabled
        job = deliveries.claim(database, "w", now, 1, timedelta(seconds=30))[0]
        result = deliveries.AttemptResult("retry", now, 5, status_code=503)
        deliveries.record(database, job, result, policy, now, random.Random(step))
        [view] = webhook_subscriptions.list_hooks(database, owner)
        assert view.status == ("active" if step < 3 else "disabled"), step
        now += timedelta(seconds=10)
    assert view.status_reason == "failing"
    assert set(statuses(database)) == {"cancelled"}


def test_a_delivery_is_given_up_after_its_time(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    policy = replace(FAST, give_up_after=timedelta(milliseconds=300))
    with receiver(lambda _request, _index: Answer(500)) as target:
        webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 1)
        run_worker(database, settings, lambda: settled(database), policy=policy)
        assert len(target.received()) >= 1  # how many fit in 300 ms depends on the machine: counted below instead
    assert statuses(database) == ["failed"]
    assert webhook_subscriptions.list_hooks(database, owner)[0].status == "active"


def test_a_failing_delivery_is_retried_until_its_time_is_up_and_never_after(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    """The same rule on the store's clock, given explicitly: retried while the next try falls inside give_up_after."""
    policy = RetryPolicy(first_delay=timedelta(seconds=10), max_delay=timedelta(seconds=10),
                         give_up_after=timedelta(seconds=60))  # fmt: skip
    webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/a", settings)
    make_events(database, owner, 1)
    created = utcnow()
    assert deliveries.fan_out(database, created) == 1
    outcomes, now = [], created
    while not outcomes or outcomes[-1] == "pending":
        [job] = deliveries.claim(database, "w", now, 1, timedelta(seconds=30))
        result = deliveries.AttemptResult("retry", now, 5, status_code=500)
        outcomes.append(deliveries.record(database, job, result, policy, now, random.Random(len(outcomes))))
        with database.read() as session:
            due = session.scalars(select(WebhookDelivery.next_attempt_at)).one()
        if outcomes[-1] == "pending":
            assert due.replace(tzinfo=UTC) <= created + policy.give_up_after
        now += timedelta(seconds=10)  # each delay is 5 to 10 s: the delivery is due again by then
    assert outcomes[-1] == "failed" and len(outcomes) >= 5  # 50 s of the 60 are surely inside the window
    assert deliveries.claim(database, "w", now + timedelta(days=1), 1, timedelta(seconds=30)) == []


def test_the_backoff_grows_exponentially_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    delays = [policy.delay(attempt, None, rng).total_seconds() for attempt in range(1, 12)]
    for attempt, seconds in enumerate(delays, start=1):
        base = min(3600, 5 * 2 ** (attempt - 1))
        assert base / 2 <= seconds <= base
    assert policy.delay(1, 120, rng).total_seconds() >= 120
    assert policy.delay(1, 10**9, rng) == policy.max_retry_after
    assert len({policy.delay(3, None, random.Random(seed)) for seed in range(20)}) > 10  # jittered


def test_each_event_is_fanned_out_once(database: Database, settings: Settings, owner: VerifiedCredential) -> None:
    webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/a", settings)
    webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/b", settings)
    make_events(database, owner, 5)
    assert deliveries.fan_out(database, utcnow(), limit=3) == 3
    assert deliveries.fan_out(database, utcnow(), limit=3) == 2
    assert deliveries.fan_out(database, utcnow(), limit=3) == 0
    with database.read() as session:
        pairs = session.execute(select(WebhookDelivery.event_id, WebhookDelivery.hook_id)).all()
    assert len(pairs) == 10 and len(set(pairs)) == 10


def test_a_claim_is_exclusive_and_its_lease_expires(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/a", settings)
    make_events(database, owner, 3)
    now = utcnow()
    deliveries.fan_out(database, now)
    first = deliveries.claim(database, "worker-1", now, 2, timedelta(seconds=30))
    second = deliveries.claim(database, "worker-2", now, 5, timedelta(seconds=30))
    assert len(first) == 2 and len(second) == 1
    assert not {job.delivery_id for job in first} & {job.delivery_id for job in second}
    assert deliveries.claim(database, "worker-3", now, 5, timedelta(seconds=30)) == []
    # worker-1 dies: once its lease has run out, its deliveries are claimed again, as second attempts
    later = deliveries.claim(database, "worker-3", now + timedelta(seconds=31), 5, timedelta(seconds=30))
    assert sorted(job.delivery_id for job in later) == sorted(job.delivery_id for job in first + second)
    assert {job.attempt for job in later} == {2}
    assert not deliveries.still_deliverable(database, first[0], now)  # worker-1's claim is no longer its own


def test_disabling_a_connection_cancels_its_deliveries_in_the_callers_transaction(
    database: Database, settings: Settings, owner: VerifiedCredential, partner: Partner, hasher: SecretHasher,
    team: Team,
) -> None:  # fmt: skip
    theirs = webhook_subscriptions.create_hook(
        database, partner.credential, "link.created", "http://127.0.0.1:9/p", settings
    )
    ours = webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/k", settings)
    other_partner = make_partner(database, hasher, team, "make")
    webhook_subscriptions.create_hook(
        database, other_partner.credential, "link.created", "http://127.0.0.1:9/o", settings
    )
    assert [hook.id for hook in webhook_subscriptions.list_hooks(database, partner.credential)] == [theirs.view.id]
    make_events(database, owner, 4)
    now = utcnow()
    deliveries.fan_out(database, now)
    claimed = deliveries.claim(database, "w", now, 12, timedelta(seconds=30))
    assert len(claimed) == 12  # 4 events for each of three hooks, one of them in flight when the disconnect comes
    with database.write() as session:  # as the disconnect will: its own transaction, then ours inside it
        session.execute(
            update(Connection)
            .where(Connection.id == partner.connection_id)
            .values(status="disconnected", disconnected_at=now, disconnected_by="usr_x")
        )
        assert webhook_subscriptions.disable_hooks_for_connection(session, partner.connection_id, now) == 1
        assert webhook_subscriptions.disable_hooks_for_connection(session, partner.connection_id, now) == 0
    with database.read() as session:
        rows = session.execute(select(Hook.public_id, Hook.status, Hook.end_reason)).all()
        by_hook = dict(
            session.execute(
                select(Hook.public_id, func.count())
                .join(WebhookDelivery, WebhookDelivery.hook_id == Hook.id)
                .where(WebhookDelivery.status.in_(("pending", "delivering")))
                .group_by(Hook.public_id)
            ).all()
        )
    assert (theirs.view.id, "disabled", "connection_ended") in rows
    assert sum(1 for _, status, _ in rows if status == "active") == 2
    assert theirs.view.id not in by_hook and by_hook[ours.view.id] >= 1
    assert deliveries.claim(database, "w2", now + timedelta(seconds=31), 50, timedelta(seconds=30)) != []
    assert not any(
        deliveries.still_deliverable(database, job, now) for job in claimed if job.hook_public_id == theirs.view.id
    )
    with pytest.raises(ReconnectRequired):
        webhook_subscriptions.list_hooks(database, partner.credential)


def test_a_rollback_of_the_callers_transaction_keeps_the_hooks(
    database: Database, settings: Settings, partner: Partner
) -> None:
    webhook_subscriptions.create_hook(database, partner.credential, "link.created", "http://127.0.0.1:9/p", settings)

    def failing_disconnect() -> None:
        with database.write() as session:
            webhook_subscriptions.disable_hooks_for_connection(session, partner.connection_id, utcnow())
            raise RuntimeError("the disconnect failed")

    with pytest.raises(RuntimeError):
        failing_disconnect()
    assert webhook_subscriptions.list_hooks(database, partner.credential)[0].status == "active"


def test_revoking_a_key_disables_its_hooks(
    database: Database, settings: Settings, owner: VerifiedCredential, team: Team
) -> None:
    created = webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/k", settings)
    make_events(database, owner, 2)
    deliveries.fan_out(database, utcnow())
    with database.write() as session:
        row_id = session.scalars(select(Credential.id).where(Credential.public_id == owner.id)).one()
        assert webhook_subscriptions.disable_hooks_for_credential(session, row_id, utcnow()) == 1
    assert set(statuses(database)) == {"cancelled"}
    with database.read() as session:
        assert session.scalars(select(Hook.end_reason)).one() == "credential_revoked"
    keys.revoke_key(database, team.admin, owner.id)
    with pytest.raises(InvalidCredential):
        webhook_subscriptions.delete_hook(database, owner, created.view.id)


def test_no_delivery_starts_for_a_hook_whose_owner_ended_even_without_the_disable_call(
    database: Database, settings: Settings, owner: VerifiedCredential, partner: Partner, team: Team
) -> None:
    """Belt and braces: the claim itself checks that the connection is active and the key alive."""
    with receiver() as target:
        webhook_subscriptions.create_hook(database, partner.credential, "link.created", target.url, settings)
        webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        with database.write() as session:
            session.execute(
                update(Connection)
                .where(Connection.id == partner.connection_id)
                .values(status="disconnected", disconnected_at=utcnow(), disconnected_by="usr_x")
            )
        keys.revoke_key(database, team.admin, owner.id)
        make_events(database, owner, 3)
        deliveries.fan_out(database, utcnow())
        assert statuses(database) == []  # fan-out skips them
        with database.write() as session:  # deliveries queued before the owner ended are cancelled at claim time
            hook_ids = list(session.scalars(select(Hook.id)))
            event_id = session.scalars(select(OutboxEvent.id)).first()
            for hook_id in hook_ids:
                session.add(
                    WebhookDelivery(
                        event_id=event_id, hook_id=hook_id, status="pending", attempts=0, next_attempt_at=utcnow(),
                        created_at=utcnow(),
                    )
                )  # fmt: skip
        run_worker(database, settings, lambda: settled(database))
        assert target.received() == []
    assert statuses(database) == ["cancelled", "cancelled"]


def test_a_hook_whose_secret_cannot_be_read_is_disabled(
    database: Database, settings: Settings, owner: VerifiedCredential
) -> None:
    with receiver() as target:
        webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 2)
        rotated = replace(settings, secret_key="a-different-server-secret-key-after-a-change")
        run_worker(database, rotated, lambda: settled(database))
        assert target.received() == []
    [view] = webhook_subscriptions.list_hooks(database, owner)
    assert (view.status, view.status_reason) == ("disabled", "secret_unreadable")


def test_no_secret_reaches_the_store(database: Database, settings: Settings, owner: VerifiedCredential) -> None:
    created = webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/k", settings)
    with database.read() as session:
        sealed = session.scalars(select(Hook.secret_ciphertext)).one()
        attempts = session.scalar(select(func.count()).select_from(WebhookAttempt))
    assert created.secret not in sealed and created.secret[6:] not in sealed and attempts == 0
    assert signing.unseal(settings.secret_key or "", created.view.id, sealed) == created.secret
    assert created.secret not in repr(created)


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(" 7 ", now) == 7
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0
    for garbage in (None, "", "soon", "-5", "1.5", "\u0661\u0662"):
        assert parse_retry_after(garbage, now) is None


def test_a_claim_without_the_sweep_cancels_what_it_reaches_of_ended_owners_and_takes_the_rest(
    database: Database, settings: Settings, owner: VerifiedCredential, partner: Partner
) -> None:
    """The claim locks the first due deliveries by their queue order alone, then checks each one's hook and owner:
    those whose connection ended are cancelled there (none is handed out), the others claimed."""
    ended = webhook_subscriptions.create_hook(
        database, partner.credential, "link.created", "http://127.0.0.1:9/p", settings
    )
    webhook_subscriptions.create_hook(database, owner, "link.created", "http://127.0.0.1:9/k", settings)
    make_events(database, owner, 2)
    deliveries.fan_out(database, utcnow())
    with database.write() as session:  # ended without the disable call, which would have cancelled them
        session.execute(
            update(Connection)
            .where(Connection.id == partner.connection_id)
            .values(status="disconnected", disconnected_at=utcnow(), disconnected_by="usr_x")
        )
    _, jobs = deliveries.take_work(database, "w", utcnow(), 100, 10, timedelta(seconds=30), sweep=False)
    with database.read() as session:
        ended_id = session.scalars(select(Hook.id).where(Hook.public_id == ended.view.id)).one()
        by_hook = [
            (row.hook_id, row.status, row.attempts, row.claimed_by)
            for row in session.execute(
                select(
                    WebhookDelivery.hook_id,
                    WebhookDelivery.status,
                    WebhookDelivery.attempts,
                    WebhookDelivery.claimed_by,
                )
            )
        ]
    assert len(jobs) == 2 and all(job.hook_id != ended_id for job in jobs) and {job.attempt for job in jobs} == {1}
    # cancelled unsent, so no attempt counted (PostgreSQL's claim marks them first and takes the count back)
    assert sorted(row[1:] for row in by_hook if row[0] == ended_id) == [("cancelled", 0, None)] * 2
    assert sorted(row[1:] for row in by_hook if row[0] != ended_id) == [("delivering", 1, "w")] * 2
