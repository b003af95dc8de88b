"""Bring a store's schema up to date with Alembic, from code (the CLI, the server start, the tests)."""

from __future__ import annotations

from functools import cache
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


@cache
def release_scripts() -> ScriptDirectory:
    """This release's migrations, read once: /readyz asks for the schema's state on every probe."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def schema_state(database: Database) -> str:
    """ "current"; "behind" (this release has migrations the store lacks); or "ahead" (a newer release migrated it:
    during a rolling deploy, whose migrations only expand, the older release keeps serving)."""
    script = release_scripts()
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
