"""The delivery queue's rules, in transactions: fan events out to hooks, claim due deliveries, record what happened.
The delivery worker (`token_broker.webhooks.delivery_worker`) does the HTTP; this module knows nothing of it.

- Fan-out: a batch of outbox events not yet fanned out becomes one delivery per (event, hook whose event type and
  workspace match, created no later than the event, and whose owner is alive), and the events are marked fanned out,
  in one transaction. On PostgreSQL the batch is taken `FOR UPDATE SKIP LOCKED`, so concurrent workers take disjoint
  batches; on SQLite the write lock (BEGIN IMMEDIATE) serialises them. A unique (event, hook) pair backs this up.
- Claim: due deliveries (pending and due, or delivering with an expired lease) of deliverable hooks are marked
  `delivering` by one worker with a lease, taken `FOR UPDATE SKIP LOCKED` on PostgreSQL, so two workers never claim
  the same attempt. The claim's transaction is the one that sees the hook active and its connection or key alive:
  after a disconnect commits, no claim of its hooks' deliveries can happen. Due deliveries of hooks that are no longer
  deliverable are cancelled on the way.
- Scopes: an event reaches a hook only while the hook's owner (the key, or the connection's access token) has the
  scope that reads the event's data (`scopes.may_receive`), checked at fan-out (no delivery is made), at claim (a due
  delivery is cancelled, its `last_error` saying which scope is missing, and nothing is sent) and again in the send
  gate. The hook itself stays active: events after the owner regains the scope are delivered.
- A worker killed mid-delivery leaves its claims `delivering`; when their lease ends another worker claims them
  again (the attempt counter already counted the lost attempt): at-least-once, never lost.
- Record: each attempt writes a line of the hook's log and moves the delivery on: succeeded; retried later with
  exponential backoff and jitter (network errors, timeouts, 5xx, 408, 429, honouring Retry-After); failed for good
  (any other status, or past `give_up_after`); a 410 deletes the hook. A hook that has failed continuously for
  `disable_after` is disabled with its queued deliveries cancelled.

Lock order on PostgreSQL, as everywhere: a hook's row before its deliveries' rows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVarTuple

from sqlalchemy import ColumnElement, Select, and_, insert, or_, select, update
from sqlalchemy.orm import Session

from token_broker.scopes import EVENT_SCOPES, may_receive
from token_broker.services.webhook_subscriptions import cancel_deliveries
from token_broker.store.database import Database
from token_broker.store.hook_models import MAX_ERROR_LENGTH, Hook, WebhookAttempt, WebhookDelivery
from token_broker.store.link_models import OutboxEvent
from token_broker.store.models import Credential
from token_broker.store.oauth_models import Connection

RETRYABLE_STATUSES = frozenset({408, 429})
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again. Delay before attempt n+1: first_delay * 2**(n-1), at most max_delay, then "equal jitter"
    (a random point in its upper half); never sooner than a Retry-After (capped at max_retry_after)."""

    first_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(hours=1)
    max_retry_after: timedelta = timedelta(days=1)
    give_up_after: timedelta = timedelta(days=3)
    disable_after: timedelta = timedelta(days=3)

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> timedelta:
        base = min(self.max_delay.total_seconds(), self.first_delay.total_seconds() * 2 ** min(attempt - 1, 40))
        seconds = base / 2 + rng.uniform(0, base / 2)
        if retry_after is not None:
            seconds = max(seconds, min(retry_after, self.max_retry_after.total_seconds()))
        return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Job:
    """One claimed attempt: everything the worker needs to make it, and the claim that proves it is still its own."""

    delivery_id: int
    hook_id: int
    hook_public_id: str
    event_id: str
    attempt: int
    target_url: str
    sealed_secret: str
    body: bytes = field(repr=False)
    claimed_by: str


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to. `outcome`: succeeded, retry, failed, gone (410) or refused (SSRF, at connect time)."""

    outcome: str
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    disable_reason: str | None = None  # e.g. secret_unreadable: the hook cannot be delivered to at all


def classify(status_code: int) -> str:
    if 200 <= status_code < 300:
        return "succeeded"
    if status_code == 410:
        return "gone"
    if status_code >= 500 or status_code in RETRYABLE_STATUSES:
        return "retry"
    return "failed"


def _deliverable(now: datetime) -> ColumnElement[bool]:
    """The hook is active and its owner alive: the connection active, or the key neither revoked nor expired.
    Needs Hook, Credential (outer-joined on Hook.credential_id) and Connection (on Hook.connection_id) in the query."""
    return and_(
        Hook.status == "active",
        or_(
            and_(Hook.connection_id.is_not(None), Connection.status == "active"),
            and_(
                Hook.connection_id.is_(None),
                Credential.status == "active",
                or_(Credential.expires_at.is_(None), Credential.expires_at > now),
            ),
        ),
    )


def _with_owner(query: Select[*Ts]) -> Select[*Ts]:
    return query.outerjoin(Connection, Connection.id == Hook.connection_id).outerjoin(
        Credential, Credential.id == Hook.credential_id
    )


def _owner_may_receive(event: str, scopes: list[str] | None, connection_id: int | None) -> bool:
    """Does the hook's owner, with its scopes as stored now, still have what reading `event` takes?"""
    return may_receive(event, scopes, partner=connection_id is not None)


def _missing_scope_error(event: str) -> str:
    needed = EVENT_SCOPES.get(event)
    return f"insufficient_scope: the owner no longer has {needed or 'full access'}"


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def fan_out(database: Database, now: datetime, limit: int = 200) -> int:
    """Turn up to `limit` new outbox events into deliveries; returns how many events were fanned out."""
    with database.write() as session:
        query = (
            select(OutboxEvent.id, OutboxEvent.workspace_id, OutboxEvent.type, OutboxEvent.created_at)
            .where(OutboxEvent.fanned_out_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
        if _is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        events = session.execute(query).all()
        if not events:
            return 0
        hooks = session.execute(
            _with_owner(
                select(Hook.id, Hook.workspace_id, Hook.event, Hook.created_at, Hook.connection_id, Credential.scopes)
            ).where(
                Hook.workspace_id.in_({event.workspace_id for event in events}),
                Hook.event.in_({event.type for event in events}),
                _deliverable(now),
            )
        ).all()
        by_key: dict[tuple[int, str], list[tuple[int, datetime]]] = {}
        for hook in hooks:
            if not _owner_may_receive(hook.event, hook.scopes, hook.connection_id):
                continue
            by_key.setdefault((hook.workspace_id, hook.event), []).append((hook.id, hook.created_at))
        rows = [
            {
                "event_id": event.id,
                "hook_id": hook_id,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for event in events
            for hook_id, created_at in by_key.get((event.workspace_id, event.type), [])
            if created_at <= event.created_at
        ]
        if rows:
            session.execute(insert(WebhookDelivery), rows)
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_([event.id for event in events]))
            .values(fanned_out_at=now)
            .execution_options(synchronize_session=False)
        )
        return len(events)


def _body(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def claim(database: Database, worker_id: str, now: datetime, limit: int, lease: timedelta) -> list[Job]:
    """Claim up to `limit` due deliveries of deliverable hooks for this worker, until now + lease."""
    if limit <= 0:
        return []
    due = and_(WebhookDelivery.status.in_(("pending", "delivering")), WebhookDelivery.next_attempt_at <= now)
    with database.write() as session:
        postgres = _is_postgres(session)
        stale = (
            _with_owner(select(WebhookDelivery.id).join(Hook, Hook.id == WebhookDelivery.hook_id))
            .where(due, ~_deliverable(now))
            .order_by(WebhookDelivery.id)
            .limit(500)
        )
        if postgres:
            stale = stale.with_for_update(of=WebhookDelivery, skip_locked=True)
        stale_ids = list(session.scalars(stale))
        if stale_ids:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(stale_ids))
                .values(status="cancelled", claimed_by=None, finished_at=now)
                .execution_options(synchronize_session=False)
            )
        query = (
            _with_owner(
                select(
                    WebhookDelivery,
                    Hook.public_id,
                    Hook.target_url,
                    Hook.secret_ciphertext,
                    OutboxEvent,
                    Hook.connection_id,
                    Credential.scopes,
                )
                .join(Hook, Hook.id == WebhookDelivery.hook_id)
                .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
            )
            .where(due, _deliverable(now))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
        )
        if postgres:
            query = query.with_for_update(of=WebhookDelivery, skip_locked=True)
        jobs = []
        for delivery, hook_public_id, target_url, sealed, event, connection_id, scopes in session.execute(query).all():
            if not _owner_may_receive(event.type, scopes, connection_id):
                delivery.status, delivery.claimed_by, delivery.finished_at = "cancelled", None, now
                delivery.last_error = _missing_scope_error(event.type)
                continue
            delivery.status = "delivering"
            delivery.claimed_by = worker_id
            delivery.attempts += 1
            delivery.next_attempt_at = now + lease
            jobs.append(
                Job(
                    delivery_id=delivery.id,
                    hook_id=delivery.hook_id,
                    hook_public_id=hook_public_id,
                    event_id=event.public_id,
                    attempt=delivery.attempts,
                    target_url=target_url,
                    sealed_secret=sealed,
                    body=_body(event.payload),
                    claimed_by=worker_id,
                )
            )
        return jobs


def _claim_holds(session: Session, job: Job, now: datetime) -> bool:
    """Is the claim still this worker's, the hook (and its owner) still deliverable, and the owner still allowed to
    read the event?"""
    found = session.execute(
        _with_owner(
            select(OutboxEvent.type, Hook.connection_id, Credential.scopes)
            .select_from(WebhookDelivery)
            .join(Hook, Hook.id == WebhookDelivery.hook_id)
            .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        ).where(
            WebhookDelivery.id == job.delivery_id,
            WebhookDelivery.status == "delivering",
            WebhookDelivery.claimed_by == job.claimed_by,
            _deliverable(now),
        )
    ).first()
    return found is not None and _owner_may_receive(found[0], found[2], found[1])


def still_deliverable(database: Database, job: Job, now: datetime) -> bool:
    """Right before connecting: is the claim still this worker's, and the hook still deliverable?"""
    with database.read() as session:
        return _claim_holds(session, job, now)


@contextmanager
def send_gate(database: Database, job: Job, now: datetime) -> Iterator[bool]:
    """While the block runs, nothing can disable or delete the job's hook: its row is held (`FOR SHARE` on
    PostgreSQL, the write lock on SQLite). Yields whether the claim is still this worker's and the hook deliverable.

    The worker opens this once the connection is up and keeps it until the request has been written, so a disconnect
    (which updates the hook's row) either commits before the check, and nothing is sent, or after the request's
    bytes were written: no request of a disabled hook starts after the disabling commits."""
    postgres = database.dialect == "postgresql"
    with database.read() if postgres else database.write() as session:
        if postgres:
            session.execute(select(Hook.id).where(Hook.id == job.hook_id).with_for_update(read=True))
        yield _claim_holds(session, job, now)


def release_claim(database: Database, job: Job, now: datetime) -> None:
    """Give a claimed delivery back, uncounted, when its attempt was abandoned before anything was sent."""
    with database.write() as session:
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == job.delivery_id,
                WebhookDelivery.status == "delivering",
                WebhookDelivery.claimed_by == job.claimed_by,
            )
            .values(status="pending", claimed_by=None, attempts=WebhookDelivery.attempts - 1, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )


def _end_hook(session: Session, hook: Hook, status: str, reason: str, now: datetime) -> None:
    if hook.status == "active":
        hook.ended_at = now
        hook.status, hook.end_reason = status, reason
    elif status == "deleted":
        hook.status, hook.end_reason = status, reason
    session.flush()
    cancel_deliveries(session, [hook.id], now)


def record(
    database: Database, job: Job, result: AttemptResult, policy: RetryPolicy, now: datetime, rng: random.Random
) -> str:
    """Log the attempt and move its delivery on; returns the delivery's new status ("lost" when the claim was no
    longer this worker's: cancelled meanwhile, or taken over after the lease ran out)."""
    with database.write() as session:
        postgres = _is_postgres(session)
        hook_query = select(Hook).where(Hook.id == job.hook_id)
        hook = session.scalar(hook_query.with_for_update(key_share=True) if postgres else hook_query)
        delivery_query = select(WebhookDelivery).where(WebhookDelivery.id == job.delivery_id)
        delivery = session.scalar(delivery_query.with_for_update() if postgres else delivery_query)
        if hook is None or delivery is None:
            return "lost"
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                hook_id=hook.id,
                attempt=job.attempt,
                started_at=result.started_at,
                duration_ms=max(0, result.duration_ms),
                status_code=result.status_code,
                outcome=result.outcome,
                error=None if result.error is None else result.error[:MAX_ERROR_LENGTH],
            )
        )
        if delivery.status != "delivering" or delivery.claimed_by != job.claimed_by:
            return "lost"
        delivery.last_status_code = result.status_code
        delivery.last_error = None if result.error is None else result.error[:MAX_ERROR_LENGTH]
        delivery.claimed_by = None
        if result.outcome == "succeeded":
            delivery.status, delivery.finished_at = "succeeded", now
            hook.failing_since = None
            return "succeeded"
        if result.outcome in ("retry", "refused") and result.disable_reason is None:
            next_attempt = now + policy.delay(job.attempt, result.retry_after, rng)
            if next_attempt <= delivery.created_at + policy.give_up_after:
                delivery.status, delivery.next_attempt_at = "pending", next_attempt
            else:
                delivery.status, delivery.finished_at = "failed", now
        else:
            delivery.status, delivery.finished_at = "failed", now
        session.flush()
        if hook.failing_since is None:
            hook.failing_since = result.started_at
        if result.outcome == "gone":
            _end_hook(session, hook, "deleted", "gone", now)
        elif result.disable_reason is not None:
            _end_hook(session, hook, "disabled", result.disable_reason, now)
        elif hook.status == "active" and now - hook.failing_since >= policy.disable_after:
            _end_hook(session, hook, "disabled", "failing", now)
        else:
            return delivery.status
        session.refresh(delivery)
        return delivery.status
