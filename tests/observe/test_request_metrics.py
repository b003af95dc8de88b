"""The request metrics counted in plain dicts expose what prometheus_client's Counter and Histogram would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from token_broker.observe.request_metrics import DURATION_BUCKETS, DURATIONS, REQUESTS, RequestMetrics

ROUTES = st.sampled_from(["/v1/me", "/v1/workspaces/{account_id}/links", "unmatched", "/oauth/token"])
ANSWERS = st.tuples(
    ROUTES,
    st.sampled_from(["GET", "POST", "other"]),
    st.sampled_from([200, 401, 404, 429, 500]),
    st.sampled_from(["", "invalid_api_key", "other"]),
    # durations on and around every bucket's bound, and past the last
    st.one_of(st.sampled_from(DURATION_BUCKETS), st.floats(min_value=0, max_value=30, allow_nan=False)),
)


def exposed(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample but the `_created` times (when each series began differs between the two by construction)."""
    found = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


@settings(max_examples=200, deadline=None)
@given(st.lists(ANSWERS, max_size=60))
def test_the_samples_are_prometheus_clients(answers: list[tuple[str, str, int, str, float]]) -> None:
    theirs = CollectorRegistry()
    counter = Counter(REQUESTS, "help", ("route", "method", "status", "error"), registry=theirs)
    histogram = Histogram(DURATIONS, "help", ("route",), buckets=DURATION_BUCKETS, registry=theirs)
    ours_registry = CollectorRegistry()
    ours = RequestMetrics()
    ours_registry.register(ours)
    for route, method, status, error, seconds in answers:
        counter.labels(route, method, str(status), error).inc()
        histogram.labels(route).observe(seconds)
        ours.count(route, method, status, error, seconds)
    mine, reference = exposed(ours_registry), exposed(theirs)
    assert mine.keys() == reference.keys()
    for key, expected in reference.items():
        assert abs(mine[key] - expected) <= 1e-9 * max(1.0, abs(expected)), key


def test_the_families_carry_their_created_times() -> None:
    registry = CollectorRegistry()
    ours = RequestMetrics()
    registry.register(ours)
    ours.count("/v1/me", "GET", 200, "", 0.002)
    text = generate_latest(registry).decode()
    assert 'token_broker_http_requests_created{error="",method="GET",route="/v1/me",status="200"}' in text
    assert "# TYPE token_broker_http_request_duration_seconds histogram" in text
