"""Prometheus families for what floods leave behind: redirects refused per address, the click batches' queue, and
sign-ins refused by the failure budgets. Read when scraped from the objects that count them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from token_broker.guard.redirect_limit import RedirectLimit
from token_broker.guard.sign_in_throttle import SignInThrottle
from token_broker.services.click_batches import ClickRecorder


@dataclass(eq=False)  # registries key collectors by identity
class AbuseState(Collector):
    redirect_limit: RedirectLimit
    clicks: ClickRecorder
    sign_ins: SignInThrottle

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("token_broker_redirects_refused", "Redirect visits refused by the per-address limit",
                                  value=self.redirect_limit.refused)  # fmt: skip
        yield GaugeMetricFamily("token_broker_clicks_pending", "Clicks noted and waiting for their batch to be written",
                                value=self.clicks.pending)  # fmt: skip
        yield CounterMetricFamily("token_broker_clicks_written", "Clicks written by this instance's batches",
                                  value=self.clicks.written)  # fmt: skip
        yield CounterMetricFamily("token_broker_clicks_dropped", "Clicks not counted because too many were waiting",
                                  value=self.clicks.dropped)  # fmt: skip
        yield CounterMetricFamily("token_broker_sign_ins_refused", "Sign-ins refused by the failure budgets (429)",
                                  value=self.sign_ins.refused)  # fmt: skip
