"""`token-broker serve --workers N`: migrations run once, in the parent, then N workers serve one store; a worker
started on a store that lacks migrations refuses to start."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.servers import command_env, console_script, running_server
from tests.support import PASSWORD
from token_broker.store.change_listener import libpq_url
from token_broker.store.database import Database

pytestmark = pytest.mark.postgres


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """A database of its own on the test server, with no schema at all."""
    name = "token_broker_test_workers"
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    url = Database(postgres_url).engine.url.set(database=name).render_as_string(hide_password=False)
    yield url
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> dict[str, str]:
    done = subprocess.run([console_script(), *args, "--json"], env=env, input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer: dict[str, str] = json.loads(done.stdout)
    return answer


def test_two_workers_on_one_store_after_one_migration(fresh_postgres: str, tmp_path: Path) -> None:
    env = command_env(fresh_postgres, TOKEN_BROKER_SECRET_KEY=secrets.token_urlsafe(32))
    log = tmp_path / "serve.log"
    with running_server(env, log, "--workers", "2") as base:
        account = cli(env, "workspace", "create", "--name", "W")["account_id"]
        cli(env, "user", "create", "--email", "w@example.com", "--workspace", account, "--role", "admin",
            stdin=PASSWORD + "\n")  # fmt: skip
        key = cli(env, "key", "create", "--workspace", account, "--name", "k", "--rate-limit", "1000/minute")
        auth = {"Authorization": f"Bearer {key['key']}"}
        # each request on a new connection, landing on either worker
        assert {httpx.get(f"{base}/v1/me", headers=auth).status_code for _ in range(40)} == {200}
        cli(env, "key", "revoke", key["id"])
        time.sleep(1.0)
        assert {httpx.get(f"{base}/v1/me", headers=auth).status_code for _ in range(40)} == {401}
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    upgrades = [line for line in lines if line["message"].startswith("Running upgrade")]
    assert upgrades and len(upgrades) == len({line["message"] for line in upgrades})  # each migration ran once
    started = {line["message"] for line in lines if line["message"].startswith("Started server process")}
    assert len(started) == 2, started  # the two workers


def test_a_worker_refuses_a_store_without_its_migrations(fresh_postgres: str) -> None:
    env = command_env(fresh_postgres, TOKEN_BROKER_SECRET_KEY=secrets.token_urlsafe(32))
    done = subprocess.run([sys.executable, "-c", "from token_broker.server import app_from_env; app_from_env()"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode != 0
    assert "run `token-broker migrate` first" in done.stderr
