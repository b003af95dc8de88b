"""Bring a store's schema up to date with Alembic, from code (the CLI, the server start, the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from token_broker.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = database.engine
    return config


def upgrade(database: Database) -> None:
    command.upgrade(alembic_config(database), "head")


def is_current(database: Database) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config(database)).get_heads())
    with database.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads()) == heads


def schema_state(database: Database) -> str:
    """ "current"; "behind" (this release has migrations the store lacks); or "ahead" (a newer release migrated it:
    during a rolling deploy, whose migrations only expand, the older release keeps serving)."""
    script = ScriptDirectory.from_config(alembic_config(database))
    with database.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == set(script.get_heads()):
        return "current"
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            return "ahead"
    return "behind"
