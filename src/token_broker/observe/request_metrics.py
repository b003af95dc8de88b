"""The request metrics: answers by route template, method, status and error code, and their durations by route.

Counted on every request, so counted cheaply: plain dict and list updates by the event loop, with no lock, no label
validation and no per-label child object, and turned into Prometheus families only when scraped (the samples
prometheus_client's Counter and Histogram would give, but for the histogram's `_created` times). A scrape runs in a
worker thread: it copies what it reads (a copy of a dict or a list is one step under the interpreter lock) and derives
each histogram's count from its copied buckets, so a scrape is consistent within each family even while requests are
counted.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

REQUESTS = "token_broker_http_requests"
DURATIONS = "token_broker_http_request_duration_seconds"
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LE = [repr(bound) for bound in DURATION_BUCKETS] + ["+Inf"]  # as prometheus_client writes these bounds


class _Durations:
    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # observations per bucket, not cumulative; the last is +Inf
        self.total = 0.0


class RequestMetrics(Collector):
    def __init__(self) -> None:
        self._answered: dict[tuple[str, str, str, str], list[float]] = {}  # labels -> [count, created]
        self._durations: dict[str, _Durations] = {}

    def count(self, route: str, method: str, status: int, error: str, seconds: float) -> None:
        """One answer. Label values must be bounded (route templates, known methods, statuses, our error codes)."""
        key = (route, method, str(status), error)
        answered = self._answered.get(key)
        if answered is None:
            self._answered[key] = [1, time.time()]
        else:
            answered[0] += 1
        durations = self._durations.get(route)
        if durations is None:
            durations = self._durations[route] = _Durations()
        durations.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        durations.total += seconds

    def describe(self) -> list[Metric]:
        return [_answered_family(), _durations_family()]

    def collect(self) -> Iterator[Metric]:
        answered = _answered_family()
        for labels, (count, created) in self._answered.copy().items():
            answered.add_metric(labels, count, created=created)
        yield answered
        durations = _durations_family()
        for route, seen in self._durations.copy().items():
            buckets, total = list(seen.buckets), seen.total
            cumulative, running = [], 0
            for le, observed in zip(_LE, buckets, strict=True):
                running += observed
                cumulative.append((le, float(running)))
            durations.add_metric([route], cumulative, total)
        yield durations


def _answered_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        REQUESTS, "HTTP requests answered, by route template, method, status and error code",
        labels=("route", "method", "status", "error"),
    )  # fmt: skip


def _durations_family() -> HistogramMetricFamily:
    return HistogramMetricFamily(DURATIONS, "Time to answer HTTP requests, by route template", labels=("route",))
