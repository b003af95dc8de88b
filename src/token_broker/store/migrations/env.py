"""Alembic environment: runs against the engine handed in by token_broker.store.migrate (or, from the alembic
command line, the store named by TOKEN_BROKER_DATABASE_URL)."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import text
from sqlalchemy.engine import Engine

from token_broker.config import Settings
from token_broker.store.database import make_engine
from token_broker.store.models import UTCDateTime
from token_broker.store.schema import metadata

# Serialises migrations of instances that start at the same time against one PostgreSQL.
_MIGRATION_LOCK_KEY = 7_361_502_118


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Migrations name plain SQLAlchemy types, so that they never import the models they describe."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_online() -> None:
    engine: Engine | None = context.config.attributes.get("engine")
    if engine is None:  # the alembic command line, for developers writing migrations
        engine = make_engine(Settings.from_env().database_url)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
                render_item=_render_item,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                connection.commit()


if context.is_offline_mode():
    raise SystemExit("token-broker migrations run online only: use `token-broker migrate`")
run_migrations_online()
