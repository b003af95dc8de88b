"""Fixtures of the multi-instance tests: Redis from scripts/test, an empty PostgreSQL store with a team, two servers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import truncate_postgres
from tests.scale.instances import Instances, two_servers
from tests.support import CHEAP_HASHING, Team, make_team
from token_broker.credentials import SecretHasher
from token_broker.store.database import Database

REDIS_URL = os.environ.get("TOKEN_BROKER_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not REDIS_URL:
        pytest.fail("TOKEN_BROKER_TEST_REDIS_URL is not set: run scripts/test, or deselect with -m 'not redis'")
    return REDIS_URL


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[Database]:
    truncate_postgres(postgres_url)
    database = Database(postgres_url)
    yield database
    database.dispose()


@pytest.fixture
def pg_team(pg_database: Database) -> Team:
    return make_team(pg_database, SecretHasher(CHEAP_HASHING))


@pytest.fixture
def instances(postgres_url: str, redis_url: str, pg_team: Team, tmp_path: Path) -> Iterator[Instances]:
    """Two `token-broker serve` processes on the test store, sharing Redis."""
    with ExitStack() as stack:
        yield two_servers(stack, postgres_url, tmp_path, TOKEN_BROKER_REDIS_URL=redis_url,
                          TOKEN_BROKER_SECRET_KEY=secrets.token_urlsafe(32))  # fmt: skip
