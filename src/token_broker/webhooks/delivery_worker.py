"""The delivery worker: fans outbox events out to hooks and delivers due deliveries through an injected client.

It runs in every `serve` process (started in the app's lifespan unless TOKEN_BROKER_WEBHOOK_WORKER=off) and, for
deployments that want it apart, on its own:

    python -m token_broker.webhooks.worker --database-url postgresql://...   (the command line: `webhooks.worker`)

Any number of workers may share one store (see `services.deliveries` for how claims keep them apart). Each keeps at
most `concurrency` deliveries in flight and works in batches, three kinds of store transaction each serving many
deliveries: one fans out new events and claims as many due deliveries as there are free slots (`take_work`); the
send gate (`send_gate`) checks, in one transaction per round, that every request about to be written is still its
worker's to make and its hook still deliverable, holding the hooks' rows until those requests are written; the
recorder (`recorder`) writes every attempt that finished meanwhile in one transaction. A slot is free again once its
attempt is recorded.

An attempt: resolve the target's host and check every address (SSRF rules; once per distinct host of a claimed
batch, right before its requests), sign the body with the hook's secret (fresh timestamp, the event's id as
`webhook-id` on every attempt), POST it to the approved address only over a kept-alive connection, and record the
answer. Bodies of answers are read (up to DRAIN_BYTES, so that the connection can carry the next request) and
thrown away; a longer one closes the connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import anyio
from anyio import to_thread
from sqlalchemy.exc import SQLAlchemyError

from token_broker.config import Settings
from token_broker.net import signing, ssrf
from token_broker.net.ssrf import IPAddress, Target
from token_broker.services import admin_notices, deliveries
from token_broker.services.deliveries import AttemptResult, Job, RetryPolicy
from token_broker.store.database import Database
from token_broker.store.models import utcnow
from token_broker.webhooks import transport
from token_broker.webhooks.recorder import Recorder
from token_broker.webhooks.send_gate import DeliveryCancelled, SendGate, StoreBusy, Ticket

log = logging.getLogger("token_broker.webhooks")
DEFAULT_CONCURRENCY = 64  # a claim, a gate round and a record batch serve about twice as many deliveries as at 32
DEFAULT_POLL_SECONDS = 0.5
DEFAULT_LEASE = timedelta(seconds=60)
EXPIRY_CHECK_SECONDS = 300.0  # how often credentials about to expire are looked for
SWEEP_SECONDS = 1.0  # how often due deliveries of hooks no longer deliverable are cancelled (never sent either way)
REQUEST_SECONDS = 20.0  # the whole attempt: connect, send, the answer's status line, headers and drained body
DRAIN_BYTES = transport.DRAIN_BYTES
MAX_SIGNING_KEYS = 4096  # hooks whose decoded signing key a worker keeps (each opened once, not per delivery)

# Where a target URL leads for this batch: the parsed target and the address approved for it, or why it is refused.
Plan = tuple[Target, IPAddress] | ssrf.TargetRefused
# The same, ready to send: where its requests go, with their constant head.
Route = transport.Destination | ssrf.TargetRefused


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(min(int(value[:12]), 10**9))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())


def _error_text(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def plan_targets(urls: Sequence[str], allow_hosts: Sequence[str]) -> dict[str, Plan]:
    """Parse and resolve each distinct target URL once, checking every address (blocking: names are looked up)."""
    plans: dict[str, Plan] = {}
    for url in dict.fromkeys(urls):
        try:
            target = ssrf.parse_target(url, allow_hosts)
            plans[url] = (target, ssrf.resolve(target))
        except ssrf.TargetRefused as refusal:
            plans[url] = refusal
    return plans


class Passage:
    """One request's way through the send gate: once its connection is up and before its first byte, wait for the
    gate's round to decide (`transport.Passage`); once the request has been written (or writing failed), let the
    round go."""

    __slots__ = ("gate", "job", "reached", "ticket")

    def __init__(self, gate: SendGate, job: Job) -> None:
        self.gate, self.job = gate, job
        self.reached = False  # the request came to the gate: its connection was up
        self.ticket: Ticket | None = None  # set when the gate let the request go on

    @property
    def proceeded(self) -> bool:
        return self.ticket is not None

    async def opened(self) -> None:
        if not self.reached:
            self.reached = True
            self.ticket = await self.gate.wait(self.job)

    def written(self) -> None:
        self.release()

    def release(self) -> None:
        if self.ticket is not None:
            self.ticket.release()


class DeliveryWorker:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        client: transport.Client,
        *,
        policy: RetryPolicy | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        fan_out_batch: int = 200,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        lease: timedelta = DEFAULT_LEASE,
        request_seconds: float = REQUEST_SECONDS,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not settings.secret_key:
            raise ValueError("the delivery worker needs settings with a secret key (Settings.with_secret_key)")
        if lease.total_seconds() <= request_seconds:
            raise ValueError("the lease must outlast an attempt, or another worker could take it over mid-flight")
        self.database = database
        self.settings = settings
        self.secret_key: str = settings.secret_key
        self.client = client
        self.policy = policy or RetryPolicy()
        self.concurrency = concurrency
        self.fan_out_batch = fan_out_batch
        self.poll_seconds = poll_seconds
        self.lease = lease
        self.request_seconds = request_seconds
        self.worker_id = worker_id or f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(6)}"
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self.in_flight = 0
        self.attempts_made = 0
        self.outcomes: Counter[str] = Counter()  # attempts by outcome, for the metrics
        self.gate = SendGate(database, request_seconds / 2)
        self.recorder = Recorder(database, self.policy, self.rng)
        self._slot_freed = anyio.Event()
        self._next_expiry_check = 0.0
        self._keys: dict[tuple[str, str], bytes] = {}
        self._more_events = False  # the last step fanned out a whole batch: the outbox may hold more
        self._next_sweep = 0.0
        # Claimed attempts waiting for a slot's task. One long-lived task per slot takes them in turn: a task
        # started per attempt cost a fifth of the event loop's time.
        self._queue: asyncio.Queue[tuple[Job, Route]] = asyncio.Queue()

    async def run_forever(self) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self.gate.run)
            tasks.start_soon(self.recorder.run)
            for _ in range(self.concurrency):
                tasks.start_soon(self._slot)
            while True:
                try:
                    busy = await self.step()
                except SQLAlchemyError:
                    log.warning("webhook worker: the store failed; trying again shortly", exc_info=True)
                    busy = False
                if self._more_events:  # fanning out needs no free slot: the outbox is emptied without waiting
                    continue
                # While busy, claim again once half the slots are free rather than for every freed slot: a claim
                # costs about the same for 1 delivery as for 16. A slow receiver delays that by poll_seconds at most.
                with anyio.move_on_after(self.poll_seconds):
                    while not busy or self.in_flight > self.concurrency // 2:
                        await self._slot_freed.wait()
                        self._slot_freed = anyio.Event()
                        busy = True

    async def step(self) -> bool:
        """Fan out one batch and claim as many due attempts as there are free slots, in one transaction, and hand
        them to the slots; True when there was work. `run_forever` runs the slots, the gate and the recorder."""
        if time.monotonic() >= self._next_expiry_check:  # time-based notices become events like any other
            self._next_expiry_check = time.monotonic() + EXPIRY_CHECK_SECONDS
            await to_thread.run_sync(admin_notices.record_expiring, self.database, utcnow())
        free = self.concurrency - self.in_flight
        sweep = time.monotonic() >= self._next_sweep
        if sweep:
            self._next_sweep = time.monotonic() + SWEEP_SECONDS
        fanned, jobs = await to_thread.run_sync(
            functools.partial(
                deliveries.take_work, self.database, self.worker_id, utcnow(), self.fan_out_batch, free, self.lease,
                sweep=sweep,
            )
        )  # fmt: skip
        self._more_events = fanned >= self.fan_out_batch
        if jobs:
            plans = await self._plan([job.target_url for job in jobs])
            self.in_flight += len(jobs)
            for job in jobs:
                self._queue.put_nowait((job, plans[job.target_url]))
        return fanned > 0 or bool(jobs)

    async def _plan(self, urls: list[str]) -> dict[str, Route]:
        allow = self.settings.webhook_allow_hosts
        if not any(_names_a_host(url, allow) for url in set(urls)):
            plans = plan_targets(urls, allow)  # addresses written in the URLs: nothing to look up, no thread
        else:
            plans = await to_thread.run_sync(plan_targets, urls, allow, abandon_on_cancel=True)
        return {url: _route(plan) for url, plan in plans.items()}

    def _signing_key(self, job: Job) -> bytes:
        """The hook's key, opened once per hook and sealed secret (a changed secret is another entry)."""
        cache_key = (job.hook_public_id, job.sealed_secret)
        key = self._keys.get(cache_key)
        if key is None:
            key = signing.signing_key(signing.unseal(self.secret_key, job.hook_public_id, job.sealed_secret))
            if len(self._keys) >= MAX_SIGNING_KEYS:
                self._keys.clear()
            self._keys[cache_key] = key
        return key

    async def _slot(self) -> None:
        queue = self._queue
        while True:
            job, plan = await queue.get()
            await self._run(job, plan)

    async def _run(self, job: Job, plan: Route) -> None:
        try:
            await self.attempt(job, plan)
        except Exception:  # one attempt's bug or store failure must not stop the worker; its lease will expire
            log.exception("webhook worker: attempt %s of %s failed unexpectedly", job.attempt, job.event_id)
        finally:
            self.in_flight -= 1
            self._slot_freed.set()

    async def attempt(self, job: Job, plan: Route) -> AttemptResult | None:
        """Make one claimed attempt and record it; None when the delivery was cancelled before it started."""
        started, clock = utcnow(), time.monotonic()

        def result(outcome: str, **fields: object) -> AttemptResult:
            elapsed = int((time.monotonic() - clock) * 1000)
            return AttemptResult(outcome, started, elapsed, **fields)  # type: ignore[arg-type]

        outcome = await self._try(job, plan, result)
        self.outcomes["cancelled" if outcome is None else outcome.outcome] += 1
        if outcome is not None:
            await self.recorder.record(job, outcome)
        return outcome

    async def _try(self, job: Job, plan: Route, result: Callable[..., AttemptResult]) -> AttemptResult | None:
        try:
            key = self._signing_key(job)
        except signing.SecretUnreadable:
            return result("failed", error="the hook's secret cannot be read", disable_reason="secret_unreadable")
        if isinstance(plan, ssrf.TargetRefused):
            return result("refused", error=str(plan))
        timestamp = int(time.time())
        head = b"webhook-id: %s\r\nwebhook-timestamp: %d\r\nwebhook-signature: %s\r\n" % (
            job.event_id.encode("ascii"),
            timestamp,
            signing.sign(key, job.event_id, timestamp, job.body).encode("ascii"),
        )
        passage = Passage(self.gate, job)
        try:
            with transport.approved(plan.address):
                deadline = asyncio.get_running_loop().time() + self.request_seconds
                answer = await self.client.send(plan, head, job.body, passage, deadline)
        except DeliveryCancelled:
            return None
        except (StoreBusy, transport.DeliveryError) as error:
            if passage.reached and not passage.proceeded:  # nothing was sent: give the delivery back, uncounted
                await to_thread.run_sync(deliveries.release_claim, self.database, job, utcnow())
                return None
            if not passage.reached and not await to_thread.run_sync(
                deliveries.still_deliverable, self.database, job, utcnow()
            ):
                return None  # cancelled meanwhile, before the point of sending
            return result("retry", error="timed out" if isinstance(error, TimeoutError) else _error_text(error))
        finally:
            passage.release()
        self.attempts_made += 1
        retry_after = parse_retry_after(answer.retry_after, utcnow()) if answer.retry_after is not None else None
        return result(deliveries.classify(answer.status_code), status_code=answer.status_code, retry_after=retry_after)


def _route(plan: Plan) -> Route:
    if isinstance(plan, ssrf.TargetRefused):
        return plan
    target, address = plan
    try:
        return transport.destination(target.scheme, target.host, target.host_header, target.port, target.path, address)
    except transport.ConnectError as error:
        return ssrf.TargetRefused(str(error))


def _names_a_host(url: str, allow_hosts: Sequence[str]) -> bool:
    """Does the URL name a host that must be looked up (rather than an address, or nothing valid)?"""
    try:
        return ssrf.parse_target(url, allow_hosts).address is None
    except ssrf.TargetRefused:
        return False
