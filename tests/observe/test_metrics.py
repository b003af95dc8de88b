"""/metrics: who may read it, what it counts (by route template, status and error code), per app; request ids."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.connect import connect, refresh, register
from tests.live import live_server
from tests.support import CHEAP_HASHING, Team, make_team
from token_broker.credentials import SecretHasher
from token_broker.services import keys
from token_broker.services.keys import KeyRequest
from token_broker.store.database import Database

METRICS_TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
def store(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[str, Database, Team]]:
    path = tmp_path / "store.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield f"sqlite:///{path}", database, make_team(database, SecretHasher(CHEAP_HASHING))
    database.dispose()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def test_requests_are_counted_by_route_template_status_and_error(store: tuple[str, Database, Team]) -> None:
    url, database, team = store
    issued = keys.create_key(database, SecretHasher(CHEAP_HASHING), team.admin, team.account_id, KeyRequest("k"))
    with live_server(url) as live, live.client() as client:
        for _ in range(3):
            assert client.get("/v1/me", headers={"Authorization": f"Bearer {issued.plaintext}"}).status_code == 200
        assert client.get("/v1/me", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get(f"/v1/workspaces/{team.account_id}/links").status_code == 401
        assert (
            client.get("/v1/no/such/thing", headers={"Authorization": f"Bearer {issued.plaintext}"}).status_code == 404
        )
        text = client.get("/metrics").text
    assert value(text, "token_broker_http_requests_total", route="/v1/me", method="GET", status="200", error="") == 3
    assert value(text, "token_broker_http_requests_total", route="/v1/me", method="GET", status="401",
                 error="malformed_api_key") == 1  # fmt: skip
    assert value(text, "token_broker_http_requests_total", route="/v1/workspaces/{account_id}/links", method="GET",
                 status="401", error="missing_api_key") == 1  # fmt: skip
    assert value(text, "token_broker_http_requests_total", route="unmatched", method="GET", status="404",
                 error="not_found") == 1  # fmt: skip
    assert value(text, "token_broker_http_request_duration_seconds_count", route="/v1/me") == 4
    assert value(text, "token_broker_argon2_verifications_total") == 1
    assert value(text, "token_broker_verification_cache_hits_total") == 3  # two 200s and the 404
    assert value(text, "token_broker_verification_cache_misses_total") == 2  # the first 200, and "nope"
    assert value(text, "token_broker_rate_limiter_mode", mode="local") == 1
    assert value(text, "token_broker_rate_limiter_mode", mode="shared") == 0
    assert value(text, "token_broker_redis_configured") == 0
    assert value(text, "token_broker_outbox_pending_deliveries") == 0
    assert value(text, "token_broker_outbox_unfanned_events") == 0
    assert value(text, "token_broker_webhook_deliveries_total", outcome="succeeded") == 0
    assert "token_broker_change_listener_up" not in text  # SQLite: polling only


def test_refreshes_are_counted_by_outcome(store: tuple[str, Database, Team]) -> None:
    url, database, team = store
    with live_server(url) as live:
        platform = register(database, "zapier")
        tokens = connect(live.base_url, platform, team.account_id)
        assert refresh(live.base_url, platform, tokens["refresh_token"]).status_code == 200
        assert refresh(live.base_url, platform, "nim_prt_not_a_token").status_code == 400
        text = httpx.get(f"{live.base_url}/metrics").text
    assert value(text, "token_broker_token_refreshes_total", outcome="ok") == 1
    assert value(text, "token_broker_token_refreshes_total", outcome="refused") == 1


def test_each_app_has_its_own_registry(store: tuple[str, Database, Team]) -> None:
    url, _, _ = store
    with live_server(url) as first, live_server(url) as second:
        httpx.get(f"{first.base_url}/healthz")
        httpx.get(f"{first.base_url}/healthz")
        one, two = (httpx.get(f"{live.base_url}/metrics").text for live in (first, second))
    labels = {"route": "/healthz", "method": "GET", "status": "200", "error": ""}
    assert value(one, "token_broker_http_requests_total", **labels) == 2
    assert value(two, "token_broker_http_requests_total", **labels) is None


def test_without_a_token_only_this_machine_may_read_them(store: tuple[str, Database, Team]) -> None:
    with live_server(store[0]) as live, live.client() as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):  # through a proxy on this machine
            assert client.get("/metrics", headers={header: "203.0.113.7"}).status_code == 404


def test_with_a_token_anyone_holding_it_may(store: tuple[str, Database, Team]) -> None:
    with live_server(store[0], metrics_token=METRICS_TOKEN) as live, live.client() as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-000000000"}).status_code == 401
        good = {"Authorization": f"Bearer {METRICS_TOKEN}", "X-Forwarded-For": "203.0.113.7"}
        assert client.get("/metrics", headers=good).status_code == 200


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("req-123_abc.def:1=2", True), ("a" * 128, True), ("a" * 129, False), ("has space", False), ("é", False)],
)
def test_request_ids_are_echoed_when_sane(store: tuple[str, Database, Team], sent: str, kept: bool) -> None:
    with live_server(store[0]) as live:
        answer = httpx.get(f"{live.base_url}/healthz", headers={"X-Request-Id": sent.encode()})  # type: ignore[dict-item]
    echoed = answer.headers["x-request-id"]
    assert (echoed == sent) is kept
    if not kept:
        assert len(echoed) == 24 and echoed.isalnum()
