"""Prometheus metrics, in a CollectorRegistry of the app's own (never prometheus_client's global one).

Counted as they happen: requests (route template, method, status, error code) and their durations
(`observe.request_metrics`), refreshes.
Read when scraped, from the objects that already count them, so the hot path pays nothing more: the verification
cache, argon2 verifications, the failure throttle, the rate limiter's mode and Redis errors, the LISTEN connection,
the delivery worker's outcomes, and the webhook queue's depth (two indexed counts, at most every DEPTH_SECONDS).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection

from token_broker.guard.guard import Guard
from token_broker.guard.limiter import RateLimiter
from token_broker.hashing_pool import HashingPool
from token_broker.observe.request_metrics import RequestMetrics
from token_broker.services.monitoring import QueueDepth, queue_depth
from token_broker.store.change_listener import ChangeListener
from token_broker.store.database import Database
from token_broker.webhooks.delivery_worker import DeliveryWorker

log = logging.getLogger("token_broker")
DEPTH_SECONDS = 5.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DELIVERY_OUTCOMES = ("succeeded", "retry", "failed", "gone", "refused", "cancelled")  # shown from zero


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.answered = RequestMetrics()
        self.registry.register(self.answered)
        self.refreshes = Counter(
            "token_broker_token_refreshes",
            "refresh_token grants at the token endpoint, by outcome (ok or refused)",
            ("outcome",),
            registry=self.registry,
        )
        self._live: LiveState | None = None

    def watch(self, live: LiveState) -> None:
        """Report the running instance's own counters (called by the lifespan once they exist)."""
        self.unwatch()
        self._live = live
        self.registry.register(live)

    def unwatch(self) -> None:
        if self._live is not None:
            self.registry.unregister(self._live)
            self._live = None

    def render(self) -> bytes:
        """The text exposition; may read the store, so call it off the event loop."""
        return generate_latest(self.registry)


@dataclass(eq=False)  # registries key collectors by identity
class LiveState(Collector):
    guard: Guard
    limiter: RateLimiter
    database: Database
    listener: ChangeListener | None = None
    worker: DeliveryWorker | None = None
    pools: tuple[HashingPool, ...] = ()  # besides the guard's own

    def __post_init__(self) -> None:
        self._depth: QueueDepth | None = None
        self._depth_at = float("-inf")
        self._depth_lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []  # the families depend on the instance's set-up; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        guard, limiter = self.guard, self.limiter
        yield _counter("token_broker_verification_cache_hits", "Requests answered from the verification cache",
                       guard.cache.hits)  # fmt: skip
        yield _counter("token_broker_verification_cache_misses", "Requests that had to verify against the store",
                       guard.cache.misses)  # fmt: skip
        yield _gauge("token_broker_verification_cache_entries", "Verification outcomes cached", len(guard.cache))
        yield _counter("token_broker_argon2_verifications", "Credential verifications against the store (argon2id for "
                       "workspace keys)", guard.store_verifications)  # fmt: skip
        yield _counter("token_broker_verification_throttled", "Verifications refused by the failure throttle",
                       guard.throttle.refused)  # fmt: skip
        shed = CounterMetricFamily("token_broker_hashing_shed", "Hashing jobs refused with 503 (queue full or "
                                   "waited too long), by pool", labels=["pool"])  # fmt: skip
        waiting = GaugeMetricFamily("token_broker_hashing_queued", "Hashing jobs waiting, by pool", labels=["pool"])
        for pool in (guard.pool, *self.pools):
            shed.add_metric([pool.name], pool.shed)
            waiting.add_metric([pool.name], pool.queued)
        yield shed
        yield waiting
        mode = GaugeMetricFamily("token_broker_rate_limiter_mode", "1 for the mode rate limits are in", labels=["mode"])
        mode.add_metric(["shared"], 1.0 if limiter.mode == "shared" else 0.0)
        mode.add_metric(["local"], 1.0 if limiter.mode == "local" else 0.0)
        yield mode
        yield _gauge(
            "token_broker_redis_configured", "1 when TOKEN_BROKER_REDIS_URL is set", limiter.shared is not None
        )
        yield _counter("token_broker_redis_errors", "Redis calls that failed (rate limit checks and reconnect probes)",
                       limiter.redis_errors)  # fmt: skip
        yield _counter("token_broker_redis_outages", "Times rate limits fell back to per-instance", limiter.outages)
        if self.listener is not None:
            yield _gauge("token_broker_change_listener_up", "1 while the LISTEN connection for credential changes is "
                         "up", self.listener.listening)  # fmt: skip
            yield _counter("token_broker_change_notifications", "Credential change notifications received",
                           self.listener.notifications)  # fmt: skip
            yield _counter("token_broker_change_listener_connections_lost", "Times the LISTEN connection was lost",
                           self.listener.connections_lost)  # fmt: skip
        if self.worker is not None:
            outcomes = CounterMetricFamily(
                "token_broker_webhook_deliveries",
                "Delivery attempts of this instance's worker, by outcome (succeeded, retry, failed, gone, refused, "
                "cancelled)",
                labels=["outcome"],
            )
            for outcome in sorted(set(DELIVERY_OUTCOMES) | set(self.worker.outcomes)):
                outcomes.add_metric([outcome], self.worker.outcomes[outcome])
            yield outcomes
        depth = self._queue_depth()
        if depth is not None:
            yield _gauge("token_broker_outbox_pending_deliveries", "Webhook deliveries queued or in flight",
                         depth.pending_deliveries)  # fmt: skip
            yield _gauge("token_broker_outbox_unfanned_events", "Outbox events not yet turned into deliveries",
                         depth.unfanned_events)  # fmt: skip

    def _queue_depth(self) -> QueueDepth | None:
        with self._depth_lock:
            if time.monotonic() - self._depth_at >= DEPTH_SECONDS:
                try:
                    self._depth = queue_depth(self.database)
                except SQLAlchemyError:
                    log.warning("metrics: could not read the webhook queue's depth")
                    self._depth = None
                self._depth_at = time.monotonic()
            return self._depth


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def metrics_of(connection: HTTPConnection) -> Metrics:
    """The running app's metrics, which its lifespan puts in the request state."""
    found: Metrics = connection.state.metrics
    return found
