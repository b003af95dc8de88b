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
- The worker's step fans out and claims in one transaction (`take_work`).
- Send gate (`send_gate_many`): one transaction holds the rows of a batch's hooks while their requests are written,
  after checking every claim again; see its docstring for why no request starts after a hook's end commits.
- Record (`record_many`, one transaction per batch): each attempt writes a line of the hook's log and moves the
  delivery on: succeeded; retried later with exponential backoff and jitter (network errors, timeouts, 5xx, 408,
  429, honouring Retry-After); failed for good (any other status, or past `give_up_after`); a 410 deletes the hook.
  A hook that has failed continuously for `disable_after` is disabled with its queued deliveries cancelled.

Lock order on PostgreSQL, as everywhere: a hook's row before its deliveries' rows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Integer, Row, Select, and_, any_, bindparam, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute, Session

from token_broker.scopes import EVENT_SCOPES, may_receive
from token_broker.services.webhook_subscriptions import cancel_deliveries
from token_broker.store.database import Database
from token_broker.store.hook_models import MAX_ERROR_LENGTH, QUEUED_SQL, Hook, WebhookAttempt, WebhookDelivery
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


def _among(session: Session, column: InstrumentedAttribute[int], ids: Iterable[int]) -> ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL as `= ANY(array)`: one statement text whatever the number of ids, so that
    psycopg prepares it once instead of one statement per list length."""
    values = sorted(set(ids))
    if _is_postgres(session):
        return column == any_(bindparam("ids", values, type_=postgresql.ARRAY(Integer), unique=True))
    return column.in_(values)


def fan_out(database: Database, now: datetime, limit: int = 200) -> int:
    """Turn up to `limit` new outbox events into deliveries; returns how many events were fanned out."""
    with database.write() as session:
        return _fan_out(session, now, limit)


def _fan_out(session: Session, now: datetime, limit: int) -> int:
    query = (
        select(OutboxEvent.id, OutboxEvent.workspace_id, OutboxEvent.type, OutboxEvent.created_at)
        .where(OutboxEvent.fanned_out_at.is_(None))
        .order_by(OutboxEvent.id)
        .limit(limit)
    )
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    events = session.connection().execute(query).all()
    if not events:
        return 0
    hooks = (
        session.connection()
        .execute(
            _with_owner(
                select(Hook.id, Hook.workspace_id, Hook.event, Hook.created_at, Hook.connection_id, Credential.scopes)
            ).where(
                Hook.workspace_id.in_({event.workspace_id for event in events}),
                Hook.event.in_({event.type for event in events}),
                _deliverable(now),
            )
        )
        .all()
    )
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
        session.connection().execute(insert(WebhookDelivery), rows)
    session.connection().execute(
        update(OutboxEvent)
        .where(_among(session, OutboxEvent.id, [event.id for event in events]))
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
    with database.write() as session:
        return _claim(session, worker_id, now, limit, lease)


def take_work(
    database: Database,
    worker_id: str,
    now: datetime,
    fan_out_limit: int,
    claim_limit: int,
    lease: timedelta,
    *,
    sweep: bool = True,
) -> tuple[int, list[Job]]:
    """The worker's step in one write transaction: fan out up to `fan_out_limit` events, then claim up to
    `claim_limit` due deliveries (those just fanned out included). Returns (events fanned out, jobs claimed).
    `sweep`: also cancel due deliveries of hooks no longer deliverable (never claimed either way; the sweep reads
    every due delivery, so a busy worker does it now and then rather than at every step)."""
    with database.write() as session:
        fanned = _fan_out(session, now, fan_out_limit)
        return fanned, _claim(session, worker_id, now, claim_limit, lease, sweep) if claim_limit > 0 else []


def _claim(
    session: Session, worker_id: str, now: datetime, limit: int, lease: timedelta, sweep: bool = True
) -> list[Job]:
    due = and_(WebhookDelivery.status.in_(("pending", "delivering")), WebhookDelivery.next_attempt_at <= now)
    postgres = _is_postgres(session)
    if sweep:
        _cancel_undeliverable(session, due, now, postgres)
    if postgres:
        return _claim_postgres(session, worker_id, now, limit, lease)
    # First the due deliveries' ids alone, in order (this write transaction holds SQLite's lock): the sort reads no
    # other table and no payload (joined here, the claim read every due delivery's event before keeping `limit` of
    # them: 27 ms for a backlog of 4,000).
    ids = list(session.connection().execute(_queue_head(now, limit)).scalars())
    if not ids:
        return []
    query = (
        _with_owner(
            select(
                WebhookDelivery.id,
                WebhookDelivery.hook_id,
                WebhookDelivery.attempts,
                *_claim_details(now),
            )
            .join(Hook, Hook.id == WebhookDelivery.hook_id)
            .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        )
        .where(_among(session, WebhookDelivery.id, ids))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
    )
    rows = session.connection().execute(query).all()
    ended = [row.id for row in rows if not row.deliverable]  # the hook or its owner ended: never sent
    if ended:
        session.connection().execute(
            update(WebhookDelivery)
            .where(_among(session, WebhookDelivery.id, ended))
            .values(status="cancelled", claimed_by=None, finished_at=now)
        )
    unreadable: dict[str, list[int]] = {}  # event type -> deliveries whose owner lost the scope that reads it
    taken = []
    for row in rows:
        if not row.deliverable:
            continue
        if _owner_may_receive(row.type, row.scopes, row.connection_id):
            taken.append(row)
        else:
            unreadable.setdefault(row.type, []).append(row.id)
    for event_type, ids in unreadable.items():
        session.connection().execute(
            update(WebhookDelivery)
            .where(_among(session, WebhookDelivery.id, ids))
            .values(status="cancelled", claimed_by=None, finished_at=now, last_error=_missing_scope_error(event_type))
            .execution_options(synchronize_session=False)
        )
    if taken:
        session.connection().execute(
            update(WebhookDelivery)
            .where(_among(session, WebhookDelivery.id, [row.id for row in taken]))
            .values(
                status="delivering",
                claimed_by=worker_id,
                attempts=WebhookDelivery.attempts + 1,
                next_attempt_at=now + lease,
            )
            .execution_options(synchronize_session=False)
        )
    return [_job(row, row.attempts + 1, worker_id) for row in taken]  # the attempt this claim counted


def _queue_head(now: datetime, limit: int) -> Select[int]:
    """The ids of the first `limit` due deliveries, in claim order, read through the queue's partial index."""
    queued = text(f"webhook_deliveries.{QUEUED_SQL}")  # as the index says it, for the planner to use it
    return (
        select(WebhookDelivery.id)
        .where(queued, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )


def _job(row: Any, attempt: int, worker_id: str) -> Job:
    """A claimed delivery's job, from a row of either claim."""
    return Job(
        delivery_id=row.id,
        hook_id=row.hook_id,
        hook_public_id=row.hook_public_id,
        event_id=row.event_public_id,
        attempt=attempt,
        target_url=row.target_url,
        sealed_secret=row.secret_ciphertext,
        body=_body(row.payload),
        claimed_by=worker_id,
    )


def _claim_details(now: datetime) -> tuple[Any, ...]:
    """What a claimed delivery needs beside its own id, hook id and attempts: its hook, its event, its owner's scopes,
    and whether it may still be sent; the same for both claims."""
    return (
        Hook.public_id.label("hook_public_id"),
        Hook.target_url,
        Hook.secret_ciphertext,
        OutboxEvent.public_id.label("event_public_id"),
        OutboxEvent.type,
        OutboxEvent.payload,
        Hook.connection_id,
        Credential.scopes,
        _deliverable(now).label("deliverable"),
    )


def _claim_postgres(session: Session, worker_id: str, now: datetime, limit: int, lease: timedelta) -> list[Job]:
    """The claim in one statement: lock the first due ids through the queue's index (`SKIP LOCKED`), mark them
    `delivering` and read their details, in one round trip (`WITH claimed AS (UPDATE ... RETURNING) SELECT ...`).
    Those whose hook or owner ended, or whose owner lost the event's scope, are then cancelled, their attempt
    uncounted: rare, one more statement when it happens."""
    head = _queue_head(now, limit).with_for_update(skip_locked=True)
    claimed = (
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(head.scalar_subquery()))
        .values(
            status="delivering",
            claimed_by=worker_id,
            attempts=WebhookDelivery.attempts + 1,
            next_attempt_at=now + lease,
        )
        .returning(WebhookDelivery.id, WebhookDelivery.hook_id, WebhookDelivery.event_id, WebhookDelivery.attempts)
        .cte("claimed")
    )
    query = (
        _with_owner(
            select(
                claimed.c.id,
                claimed.c.hook_id,
                claimed.c.attempts,
                *_claim_details(now),
            )
            .select_from(claimed)
            .join(Hook, Hook.id == claimed.c.hook_id)
            .join(OutboxEvent, OutboxEvent.id == claimed.c.event_id)
        )
    ).order_by(claimed.c.id)
    rows = session.connection().execute(query).all()
    taken, refused = [], []
    for row in rows:
        if row.deliverable and _owner_may_receive(row.type, row.scopes, row.connection_id):
            taken.append(row)
        else:
            refused.append(row)
    if refused:
        _cancel_claimed(session, refused, now)
    return [_job(row, row.attempts, worker_id) for row in taken]  # RETURNING gave the attempts already counted


def _cancel_claimed(session: Session, rows: Sequence[Row[Any]], now: datetime) -> None:
    """Cancel deliveries this transaction has just claimed, their attempt uncounted: the hook or its owner ended
    (never sent), or the owner lost the scope that reads the event (`last_error` says which)."""
    for row in rows:
        error = None if not row.deliverable else _missing_scope_error(row.type)
        session.connection().execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == row.id)
            .values(
                status="cancelled",
                claimed_by=None,
                finished_at=now,
                attempts=WebhookDelivery.attempts - 1,
                next_attempt_at=now,
                last_error=error if error is not None else WebhookDelivery.last_error,
            )
            .execution_options(synchronize_session=False)
        )


def _cancel_undeliverable(session: Session, due: ColumnElement[bool], now: datetime, postgres: bool) -> None:
    stale = (
        _with_owner(select(WebhookDelivery.id).join(Hook, Hook.id == WebhookDelivery.hook_id))
        .where(due, ~_deliverable(now))
        .order_by(WebhookDelivery.id)
        .limit(500)
    )
    if postgres:
        stale = stale.with_for_update(of=WebhookDelivery, skip_locked=True)
    stale_ids = list(session.connection().execute(stale).scalars())
    if stale_ids:
        session.connection().execute(
            update(WebhookDelivery)
            .where(_among(session, WebhookDelivery.id, stale_ids))
            .values(status="cancelled", claimed_by=None, finished_at=now)
        )


def _claims_holding(session: Session, jobs: Sequence[Job], now: datetime) -> set[int]:
    """The delivery ids, among these jobs', whose claim is still the job's, whose hook (and its owner) is still
    deliverable, and whose owner may still read the event."""
    if not jobs:
        return set()
    claimed_by = {job.delivery_id: job.claimed_by for job in jobs}
    found = (
        session.connection()
        .execute(
            _with_owner(
                select(
                    WebhookDelivery.id,
                    WebhookDelivery.claimed_by,
                    OutboxEvent.type,
                    Hook.connection_id,
                    Credential.scopes,
                )
                .select_from(WebhookDelivery)
                .join(Hook, Hook.id == WebhookDelivery.hook_id)
                .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
            ).where(
                _among(session, WebhookDelivery.id, claimed_by),
                WebhookDelivery.status == "delivering",
                _deliverable(now),
            )
        )
        .all()
    )
    return {
        row.id
        for row in found
        if row.claimed_by == claimed_by[row.id] and _owner_may_receive(row.type, row.scopes, row.connection_id)
    }


def still_deliverable(database: Database, job: Job, now: datetime) -> bool:
    """Right before connecting: is the claim still this worker's, and the hook still deliverable?"""
    with database.read() as session:
        return job.delivery_id in _claims_holding(session, [job], now)


@contextmanager
def send_gate_many(database: Database, jobs: Sequence[Job], now: datetime) -> Iterator[set[int]]:
    """While the block runs, nothing can disable or delete any of the jobs' hooks: their rows are held (`FOR SHARE`
    on PostgreSQL, taken in id order; the write lock on SQLite). Yields the delivery ids that may be sent: claim
    still the job's, hook and owner deliverable, scope still held.

    The worker opens this for a round of requests whose connections are up and keeps it until every request it
    allowed has been written. Disabling, deleting a hook, a disconnect and a revocation all update the hook's row
    (`webhook_subscriptions`), which waits for the round's shared lock (PostgreSQL) or for the write lock (SQLite).
    So such a change either commits before the round's check, which then sees it (on PostgreSQL each statement of a
    READ COMMITTED transaction reads what was committed before it began, and the check runs after the lock is
    granted), and nothing is sent; or it commits after every request of the round was written. No request of a
    disabled hook starts after the disabling commits."""
    postgres = database.dialect == "postgresql"
    with database.read() if postgres else database.write() as session:
        if postgres:
            hook_ids = sorted({job.hook_id for job in jobs})
            session.connection().execute(
                select(Hook.id).where(_among(session, Hook.id, hook_ids)).order_by(Hook.id).with_for_update(read=True)
            )
        yield _claims_holding(session, jobs, now)


@contextmanager
def send_gate(database: Database, job: Job, now: datetime) -> Iterator[bool]:
    """`send_gate_many` for one job: yields whether it may be sent, holding its hook's row meanwhile."""
    with send_gate_many(database, [job], now) as allowed:
        yield job.delivery_id in allowed


def release_claim(database: Database, job: Job, now: datetime) -> None:
    """Give a claimed delivery back, uncounted, when its attempt was abandoned before anything was sent."""
    with database.write() as session:
        session.connection().execute(
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
    """`record_many` for one attempt."""
    return record_many(database, [(job, result)], policy, now, rng)[0]


def record_many(
    database: Database,
    attempts: Sequence[tuple[Job, AttemptResult]],
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random,
) -> list[str]:
    """Log these attempts and move their deliveries on, in one write transaction; returns each delivery's new status
    ("lost" when the claim was no longer this worker's: cancelled meanwhile, or taken over after the lease ran out).
    Until it commits, the deliveries stay claimed: a worker that dies before leaves them to be taken over when their
    lease ends, and sent again (at least once)."""
    if not attempts:
        return []
    with database.write() as session:
        postgres = _is_postgres(session)
        all_succeeded = all(result.outcome == "succeeded" for _, result in attempts)
        hook_lock = select(Hook.id).where(_among(session, Hook.id, [job.hook_id for job, _ in attempts]))
        if all_succeeded:
            # A success writes to its hook's row only to end a failing streak: only those rows need the lock, and
            # the query that takes it says which they are (one statement fewer than a separate UPDATE's attempt).
            hook_lock = hook_lock.where(Hook.failing_since.is_not(None))
        hook_lock = hook_lock.order_by(Hook.id)
        locked = set(  # hooks, then deliveries
            session.connection().execute(hook_lock.with_for_update(key_share=True) if postgres else hook_lock).scalars()
        )
        failing = locked if all_succeeded else None  # None: not known, the UPDATE below looks
        statuses = _record_successes(
            session, [(job, result) for job, result in attempts if result.outcome == "succeeded"], now, failing
        )
        others = [(job, result) for job, result in attempts if result.outcome != "succeeded"]
        if others:
            statuses |= _record_others(session, others, policy, now, rng)
        return [statuses[job.delivery_id] for job, _ in attempts]


def _attempt_row(job: Job, result: AttemptResult) -> dict[str, object]:
    return {
        "delivery_id": job.delivery_id,
        "hook_id": job.hook_id,
        "attempt": job.attempt,
        "started_at": result.started_at,
        "duration_ms": max(0, result.duration_ms),
        "status_code": result.status_code,
        "outcome": result.outcome,
        "error": None if result.error is None else result.error[:MAX_ERROR_LENGTH],
    }


def _record_successes(
    session: Session, attempts: list[tuple[Job, AttemptResult]], now: datetime, failing: set[int] | None
) -> dict[int, str]:
    """The common case in a few statements whatever the batch's size: log the attempts, mark the deliveries that are
    still this worker's succeeded, and clear their hooks' failing streak (`failing`: the hooks that have one, when
    known)."""
    if not attempts:
        return {}
    session.connection().execute(insert(WebhookAttempt), [_attempt_row(job, result) for job, result in attempts])
    groups: dict[tuple[str, int | None], list[int]] = {}
    for job, result in attempts:
        groups.setdefault((job.claimed_by, result.status_code), []).append(job.delivery_id)
    succeeded: set[int] = set()
    for (claimed_by, status_code), ids in groups.items():
        succeeded.update(
            session.connection()
            .execute(
                update(WebhookDelivery)
                .where(
                    _among(session, WebhookDelivery.id, ids),
                    WebhookDelivery.status == "delivering",
                    WebhookDelivery.claimed_by == claimed_by,
                )
                .values(
                    status="succeeded", claimed_by=None, last_status_code=status_code, last_error=None, finished_at=now
                )
                .returning(WebhookDelivery.id)
            )
            .scalars()
        )
    cleared = {job.hook_id for job, _ in attempts if job.delivery_id in succeeded}
    hook_ids = sorted(cleared if failing is None else cleared & failing)
    if hook_ids:
        session.connection().execute(
            update(Hook)
            .where(_among(session, Hook.id, hook_ids), Hook.failing_since.is_not(None))
            .values(failing_since=None)
            .execution_options(synchronize_session=False)
        )
    return {job.delivery_id: "succeeded" if job.delivery_id in succeeded else "lost" for job, _ in attempts}


def _record_others(
    session: Session,
    attempts: list[tuple[Job, AttemptResult]],
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random,
) -> dict[int, str]:
    """Failures, retries, refusals and 410s, one by one: each may end its hook."""
    postgres = _is_postgres(session)
    hooks = {
        hook.id: hook for hook in session.scalars(select(Hook).where(Hook.id.in_({job.hook_id for job, _ in attempts})))
    }
    delivery_query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.id.in_(sorted(job.delivery_id for job, _ in attempts)))
        .order_by(WebhookDelivery.id)
    )
    if postgres:
        delivery_query = delivery_query.with_for_update()
    found = {delivery.id: delivery for delivery in session.scalars(delivery_query)}
    statuses: dict[int, str] = {}
    for job, result in attempts:
        hook, delivery = hooks.get(job.hook_id), found.get(job.delivery_id)
        if hook is None or delivery is None:
            statuses[job.delivery_id] = "lost"
            continue
        status, ended = _record_one(session, hook, delivery, job, result, policy, now, rng)
        statuses[job.delivery_id] = status
        if ended:  # its queued deliveries were cancelled in the store: reread those this batch still holds
            for other in found.values():
                if other.hook_id == hook.id:
                    session.refresh(other)
    return statuses


def _record_one(
    session: Session,
    hook: Hook,
    delivery: WebhookDelivery,
    job: Job,
    result: AttemptResult,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random,
) -> tuple[str, bool]:
    """One attempt's line and its delivery's next state; also whether the hook was ended (deleted or disabled)."""
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
        return "lost", False
    delivery.last_status_code = result.status_code
    delivery.last_error = None if result.error is None else result.error[:MAX_ERROR_LENGTH]
    delivery.claimed_by = None
    if result.outcome == "succeeded":
        delivery.status, delivery.finished_at = "succeeded", now
        if hook.failing_since is not None:
            hook.failing_since = None
        return "succeeded", False
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
        return delivery.status, False
    session.refresh(delivery)
    return delivery.status, True
