"""Shared fixtures: real stores (SQLite per test, PostgreSQL truncated per test), a cheap argon2id hasher, actors."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text

from token_broker.config import HashingCost
from token_broker.credentials import SecretHasher
from token_broker.services import workspaces
from token_broker.services.actors import Actor
from token_broker.store import migrate
from token_broker.store.database import Database
from token_broker.store.models import Base, User

POSTGRES_URL = os.environ.get("TOKEN_BROKER_TEST_POSTGRES_URL")
# Real argon2id, at a cost that keeps a suite of thousands of hashes fast; production uses argon2-cffi's defaults.
CHEAP_HASHING = HashingCost(time_cost=1, memory_kib=1024, parallelism=1)
CHEAP_HASHING_ENV = {
    "TOKEN_BROKER_ARGON2_TIME_COST": "1",
    "TOKEN_BROKER_ARGON2_MEMORY_KIB": "1024",
    "TOKEN_BROKER_ARGON2_PARALLELISM": "1",
}
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    database = Database(f"sqlite:///{path}")
    migrate.upgrade(database)
    database.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not POSTGRES_URL:
        pytest.fail("TOKEN_BROKER_TEST_POSTGRES_URL is not set: run scripts/test, or deselect with -m 'not postgres'")
    database = Database(POSTGRES_URL)
    with database.engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(database)
    database.dispose()
    return POSTGRES_URL


def truncate_postgres(url: str) -> None:
    database = Database(url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    database.dispose()


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


@dataclass(frozen=True)
class Team:
    """A workspace with one user in each role, and a second workspace none of them belongs to."""

    account_id: str
    other_account_id: str
    owner: Actor
    admin: Actor
    member: Actor
    viewer: Actor
    outsider: Actor


def add_member(database: Database, hasher: SecretHasher, account_id: str, role: str, email: str) -> Actor:
    added = workspaces.add_user(database, hasher, Actor.operator(), email, PASSWORD, account_id, role)
    with database.read() as session:
        user = session.scalars(select(User).where(User.public_id == added.user_id)).one()
    return Actor.user(user.id, user.public_id, client_address="198.51.100.7")


@pytest.fixture
def team(database: Database, hasher: SecretHasher, operator: Actor) -> Team:
    account_id = workspaces.create_workspace(database, operator, "Acme")
    other = workspaces.create_workspace(database, operator, "Globex")
    return Team(
        account_id=account_id,
        other_account_id=other,
        owner=add_member(database, hasher, account_id, "owner", "owner@acme.example"),
        admin=add_member(database, hasher, account_id, "admin", "admin@acme.example"),
        member=add_member(database, hasher, account_id, "member", "member@acme.example"),
        viewer=add_member(database, hasher, account_id, "viewer", "viewer@acme.example"),
        outsider=add_member(database, hasher, other, "owner", "owner@globex.example"),
    )
