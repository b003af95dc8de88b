"""Migrations build the schema the models describe, on both databases; SQLite runs in WAL with IMMEDIATE writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from token_broker.store import migrate
from token_broker.store.database import Database, normalize_url
from token_broker.store.models import Credential, Workspace, utcnow
from token_broker.store.schema import metadata


def test_migrations_match_the_models(database: Database) -> None:
    assert migrate.is_current(database)
    with database.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
    assert diff == []


def test_the_schema_holds_every_models_module() -> None:
    assert {"workspaces", "credentials", "links", "link_clicks", "outbox_events"} <= set(metadata.tables)


def test_migrating_twice_is_harmless(database: Database) -> None:
    migrate.upgrade(database)
    assert migrate.is_current(database)


def test_a_new_sqlite_store_is_not_current_until_migrated(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'new.db'}")
    assert not migrate.is_current(database)
    migrate.upgrade(database)
    assert migrate.is_current(database)
    database.dispose()


def test_sqlite_runs_in_wal_with_a_busy_timeout(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    database.dispose()


def test_sqlite_write_transactions_take_the_lock_at_begin(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    migrate.upgrade(database)
    other = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with other.engine.connect() as probe:
        probe.exec_driver_sql("PRAGMA busy_timeout = 0")
        with database.write() as session:
            session.execute(text("SELECT 1"))  # no write yet, but BEGIN IMMEDIATE already holds the write lock
            with pytest.raises(Exception, match="locked"):
                probe.exec_driver_sql("BEGIN IMMEDIATE")
    other.dispose()
    database.dispose()


def test_postgres_urls_use_psycopg() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_constraints_hold_in_the_database(database: Database) -> None:
    now = utcnow()
    with database.write() as session:
        workspace = Workspace(account_id="acc_constraints", name="C", created_at=now)
        session.add(workspace)
    bad = Credential(
        public_id="AAAAAAAAAAAA",
        workspace_id=workspace.id,
        kind="key",
        name="revoked without a time",
        secret_hash="$argon2id$x",
        status="revoked",
        allowed_ips=[],
        rate_limits=[],
        hint="h",
        created_at=now,
        created_by="operator",
        version=1,
    )
    with pytest.raises(IntegrityError), database.write() as session:
        session.add(bad)
