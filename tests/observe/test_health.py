"""GET /healthz and GET /readyz on a real server: ready when the schema is at this release's head, every platform's
manifest is loaded and Redis (when configured) answers; otherwise 503 naming each check that failed. A server that
finds no manifest for a platform says so in a warning that names the platform and where it looked."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from tests.live import live_server
from tests.servers import free_port
from token_broker.store import migrate
from token_broker.store.database import Database

CONNECTORS = Path(__file__).resolve().parents[2] / "connectors"
READY_CHECKS = {
    "store": "ok",
    "schema": "current",
    "manifests": {"zapier": "ok", "make": "ok", "n8n": "ok"},
    "redis": "not configured",
}


@pytest.fixture
def store_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "store.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def test_a_migrated_store_with_every_manifest_is_healthy_and_ready(store_url: str) -> None:
    with live_server(store_url) as server, server.client() as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "checks": READY_CHECKS}
        assert ready.headers["cache-control"] == "no-store"
        assert client.head("/readyz").status_code == 200


def test_a_missing_manifest_is_a_warning_at_start_and_not_ready(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    connectors = tmp_path / "connectors"
    (connectors / "zapier").mkdir(parents=True)
    shutil.copyfile(CONNECTORS / "zapier" / "manifest.json", connectors / "zapier" / "manifest.json")
    with caplog.at_level(logging.WARNING, logger="token_broker"), live_server(store_url, connectors_dir=connectors):
        warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
        for platform in ("make", "n8n"):
            assert any(
                f"no manifest for platform {platform}" in text and str(connectors / platform / "manifest.json") in text
                for text in warnings
            ), warnings
        assert not any("platform zapier" in text for text in warnings)
    with live_server(store_url, connectors_dir=connectors) as server, server.client() as client:
        assert client.get("/healthz").status_code == 200  # alive: restarting would not bring the manifests back
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not_ready",
        "failed": ["manifests"],
        "checks": READY_CHECKS | {"manifests": {"zapier": "ok", "make": "missing", "n8n": "missing"}},
    }
    assert str(tmp_path) not in ready.text  # the public answer names platforms, not the server's paths


def test_a_store_behind_this_release_is_not_ready(store_url: str) -> None:
    database = Database(store_url)
    config = migrate.alembic_config(database)
    (head,) = ScriptDirectory.from_config(config).get_heads()
    before_head = ScriptDirectory.from_config(config).get_revision(head).down_revision
    assert isinstance(before_head, str)
    command.stamp(config, before_head, purge=True)  # as if this release's last migration had not been applied
    database.dispose()
    with live_server(store_url) as server, server.client() as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["schema"]
    assert ready.json()["checks"]["schema"] == "behind"


def test_unreachable_redis_is_not_ready(store_url: str) -> None:
    with live_server(store_url, redis_url=f"redis://127.0.0.1:{free_port()}/0") as server, server.client() as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["failed"] == ["redis"]
        assert ready.json()["checks"]["redis"] == "unreachable"
        assert client.get("/healthz").status_code == 200  # limits fall back to each instance: still alive


@pytest.mark.redis
def test_reachable_redis_is_ready(store_url: str) -> None:
    redis_url = os.environ.get("TOKEN_BROKER_TEST_REDIS_URL")
    if not redis_url:
        pytest.fail("TOKEN_BROKER_TEST_REDIS_URL is not set: run scripts/test, or deselect with -m 'not redis'")
    with live_server(store_url, redis_url=redis_url) as server, server.client() as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["redis"] == "ok"


@pytest.mark.postgres
def test_an_unreachable_store_is_not_ready_nor_healthy() -> None:
    closed = f"postgresql+psycopg://tb@127.0.0.1:{free_port()}/nowhere"
    with live_server(closed, listen_notify=False, webhook_worker=False) as server, server.client() as client:
        ready = client.get("/readyz")
        health = client.get("/healthz")
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["store", "schema"]
    assert ready.json()["checks"]["store"] == "unreachable"
    assert health.status_code == 503 and health.json()["error"] == "service_unavailable"
