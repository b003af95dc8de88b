"""Shared fixtures: real stores (SQLite per test, PostgreSQL truncated per test), a cheap argon2id hasher, actors."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tests import ssl_contexts
from tests.live import LiveServer, live_server
from tests.makers import Keys
from tests.support import CHEAP_HASHING, Team, make_team
from token_broker.credentials import SecretHasher
from token_broker.services.actors import Actor
from token_broker.store import migrate
from token_broker.store.database import Database
from token_broker.store.schema import metadata

POSTGRES_URL = os.environ.get("TOKEN_BROKER_TEST_POSTGRES_URL")

ssl_contexts.share()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    database = Database(f"sqlite:///{path}")
    migrate.upgrade(database)
    database.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.fail("TOKEN_BROKER_TEST_POSTGRES_URL is not set: run scripts/test, or deselect with -m 'not postgres'")
    database = Database(POSTGRES_URL)
    with database.engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(database)
    database.dispose()
    yield POSTGRES_URL
    for emptier in _emptiers.values():
        emptier.dispose()


_emptiers: dict[str, Database] = {}  # one engine a URL for emptying the store between tests, kept for the session


def truncate_postgres(url: str) -> None:
    """Every table emptied and its ids restarted. The engine (and its connection) is kept: connecting anew for each
    test took as long as the TRUNCATE."""
    database = _emptiers.get(url) or _emptiers.setdefault(url, Database(url))
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty store of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    truncate_postgres(url)
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def hasher() -> SecretHasher:
    return SecretHasher(CHEAP_HASHING)


@pytest.fixture
def operator() -> Actor:
    return Actor.operator(client_address="203.0.113.9")


@pytest.fixture
def team(database: Database, hasher: SecretHasher) -> Team:
    return make_team(database, hasher)


@pytest.fixture
def live(database_url: str, database: Database) -> Iterator[LiveServer]:
    """A real server on 127.0.0.1 over the test's store."""
    with live_server(database_url) as server:
        yield server


@pytest.fixture
def make(database: Database, hasher: SecretHasher, team: Team) -> Keys:
    return Keys(database, hasher, team)
