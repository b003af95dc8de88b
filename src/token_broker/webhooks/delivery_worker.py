"""The delivery worker: fans outbox events out to hooks and delivers due deliveries through an injected client.

It runs in every `serve` process (started in the app's lifespan unless TOKEN_BROKER_WEBHOOK_WORKER=off) and, for
deployments that want it apart, on its own:

    python -m token_broker.webhooks.worker --database-url postgresql://...   (the command line: `webhooks.worker`)

Any number of workers may share one store (see `services.deliveries` for how claims keep them apart). Each keeps at
most `concurrency` deliveries in flight and claims only as many as it has free slots, so every claimed attempt starts
at once; right before connecting it checks once more that the claim is still its own and the hook still deliverable.
An attempt: resolve the target's host and check every address (SSRF rules), sign the body with the hook's secret
(fresh timestamp, the event's id as `webhook-id` on every attempt), POST it to the approved address only, and record
the answer. Bodies of answers are never read.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import anyio
import httpx
from anyio import to_thread
from sqlalchemy.exc import SQLAlchemyError

from token_broker.config import Settings
from token_broker.net import signing, ssrf
from token_broker.services import admin_notices, deliveries
from token_broker.services.deliveries import AttemptResult, Job, RetryPolicy
from token_broker.store.database import Database
from token_broker.store.models import utcnow
from token_broker.webhooks import transport

log = logging.getLogger("token_broker.webhooks")
DEFAULT_CONCURRENCY = 8
DEFAULT_POLL_SECONDS = 0.5
DEFAULT_LEASE = timedelta(seconds=60)
EXPIRY_CHECK_SECONDS = 300.0  # how often credentials about to expire are looked for
REQUEST_SECONDS = 20.0  # the whole attempt: connect, send, and the answer's status line and headers


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


class DeliveryCancelled(Exception):
    """The delivery was cancelled (hook disabled or deleted, owner ended, claim lost) before its request started."""


class StoreBusy(Exception):
    """The check before sending could not be made in time; nothing was sent."""


class SendGate:
    """httpcore's `trace` extension: when the connection is up and the request's headers are about to be written,
    check in the store, holding the hook's row (`deliveries.send_gate`), that the delivery may still be made; keep
    holding it until the request's body has been written. A thread holds the transaction meanwhile."""

    def __init__(self, database: Database, job: Job, limit_seconds: float) -> None:
        self.database, self.job, self.limit_seconds = database, job, limit_seconds
        self.opened = False
        self.proceeded = False  # the check passed and the request went on to be written
        self.allowed: bool | None = None  # None: not decided (yet), or the store could not be asked
        self._checked = threading.Event()
        self._released = threading.Event()

    async def trace(self, name: str, _info: dict[str, object]) -> None:
        if name.endswith("send_request_headers.started") and not self.opened:
            self.opened = True
            threading.Thread(target=self._hold, name="webhook-send-gate", daemon=True).start()
            await to_thread.run_sync(self._checked.wait, self.limit_seconds)
            if self.allowed is None:
                self.release()
                raise StoreBusy()
            if not self.allowed:
                raise DeliveryCancelled()
            self.proceeded = True
        elif name.endswith(("send_request_body.complete", "send_request_body.failed", "send_request_headers.failed")):
            self.release()

    def _hold(self) -> None:
        try:
            with deliveries.send_gate(self.database, self.job, utcnow()) as allowed:
                if self._released.is_set():  # the sender gave up waiting: decide nothing
                    return
                self.allowed = allowed
                self._checked.set()
                if allowed:
                    self._released.wait(self.limit_seconds)
        except Exception:
            log.warning("webhook worker: could not check delivery %s before sending", self.job.delivery_id)
        finally:
            self._checked.set()

    def release(self) -> None:
        self._released.set()


class DeliveryWorker:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        client: httpx.AsyncClient,
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
        self._slot_freed = anyio.Event()
        self._next_expiry_check = 0.0

    async def run_forever(self) -> None:
        async with anyio.create_task_group() as tasks:
            while True:
                try:
                    busy = await self.step(tasks)
                except SQLAlchemyError:
                    log.warning("webhook worker: the store failed; trying again shortly", exc_info=True)
                    busy = False
                if not busy or self.in_flight >= self.concurrency:
                    with anyio.move_on_after(self.poll_seconds):
                        await self._slot_freed.wait()
                    self._slot_freed = anyio.Event()

    async def step(self, tasks: anyio.abc.TaskGroup) -> bool:
        """Fan out one batch and start as many due attempts as there are free slots; True when there was work."""
        if time.monotonic() >= self._next_expiry_check:  # time-based notices become events like any other
            self._next_expiry_check = time.monotonic() + EXPIRY_CHECK_SECONDS
            await to_thread.run_sync(admin_notices.record_expiring, self.database, utcnow())
        fanned = await to_thread.run_sync(deliveries.fan_out, self.database, utcnow(), self.fan_out_batch)
        free = self.concurrency - self.in_flight
        jobs: list[Job] = []
        if free > 0:
            jobs = await to_thread.run_sync(deliveries.claim, self.database, self.worker_id, utcnow(), free, self.lease)
        for job in jobs:
            self.in_flight += 1
            tasks.start_soon(self._run, job)
        return fanned > 0 or bool(jobs)

    async def _run(self, job: Job) -> None:
        try:
            await self.attempt(job)
        except Exception:  # one attempt's bug or store failure must not stop the worker; its lease will expire
            log.exception("webhook worker: attempt %s of %s failed unexpectedly", job.attempt, job.event_id)
        finally:
            self.in_flight -= 1
            self._slot_freed.set()

    async def attempt(self, job: Job) -> AttemptResult | None:
        """Make one claimed attempt and record it; None when the delivery was cancelled before it started."""
        started, clock = utcnow(), time.monotonic()

        def result(outcome: str, **fields: object) -> AttemptResult:
            elapsed = int((time.monotonic() - clock) * 1000)
            return AttemptResult(outcome, started, elapsed, **fields)  # type: ignore[arg-type]

        outcome = await self._try(job, result)
        self.outcomes["cancelled" if outcome is None else outcome.outcome] += 1
        if outcome is not None:
            await to_thread.run_sync(deliveries.record, self.database, job, outcome, self.policy, utcnow(), self.rng)
        return outcome

    async def _try(self, job: Job, result: Callable[..., AttemptResult]) -> AttemptResult | None:
        try:
            secret = signing.unseal(self.secret_key, job.hook_public_id, job.sealed_secret)
        except signing.SecretUnreadable:
            return result("failed", error="the hook's secret cannot be read", disable_reason="secret_unreadable")
        try:
            target = ssrf.parse_target(job.target_url, self.settings.webhook_allow_hosts)
            address = await to_thread.run_sync(ssrf.resolve, target, abandon_on_cancel=True)
        except ssrf.TargetRefused as refusal:
            return result("refused", error=str(refusal))
        headers = signing.signature_headers(secret, job.event_id, utcnow(), job.body)
        request = transport.pinned_request(
            self.client, target.scheme, target.host, target.host_header, target.port, target.path, address,
            headers, job.body,
        )  # fmt: skip
        gate = SendGate(self.database, job, self.request_seconds / 2)
        request.extensions["trace"] = gate.trace
        try:
            with transport.approved(address), anyio.fail_after(self.request_seconds):
                response = await self.client.send(request, stream=True)
                await response.aclose()
        except DeliveryCancelled:
            return None
        except (StoreBusy, TimeoutError, httpx.HTTPError) as error:
            if gate.opened and not gate.proceeded:  # nothing was sent: give the delivery back, uncounted
                await to_thread.run_sync(deliveries.release_claim, self.database, job, utcnow())
                return None
            if not gate.opened and not await to_thread.run_sync(
                deliveries.still_deliverable, self.database, job, utcnow()
            ):
                return None  # cancelled meanwhile, before the point of sending
            return result("retry", error="timed out" if isinstance(error, TimeoutError) else _error_text(error))
        finally:
            gate.release()
        self.attempts_made += 1
        retry_after = parse_retry_after(response.headers.get("retry-after"), utcnow())
        return result(
            deliveries.classify(response.status_code), status_code=response.status_code, retry_after=retry_after
        )
