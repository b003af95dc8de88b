"""Running the app under uvicorn: migrate once, then serve in one process or in several workers.

`token-broker serve --workers N` migrates in the parent, then lets uvicorn start N worker processes, each building
its app with `app_from_env`. The same factory serves `uvicorn token_broker.server:app_from_env --factory --workers N`
directly, after `token-broker migrate`: a worker refuses to start on a store that lacks this release's migrations, and
serves a store that a newer release already migrated (a rolling deploy, whose migrations only add).
"""

from __future__ import annotations

import logging
import os

import uvicorn
from starlette.applications import Starlette

from token_broker.app import create_app
from token_broker.config import Settings
from token_broker.observe import logs
from token_broker.store import migrate
from token_broker.store.database import Database

log = logging.getLogger("token_broker")
FACTORY = "token_broker.server:app_from_env"


class StoreNotMigrated(RuntimeError):
    """The store lacks migrations this release needs."""


def migrate_store(settings: Settings) -> None:
    database = Database(settings.database_url)
    try:
        if migrate.schema_state(database) == "ahead":
            log.warning("the store's schema is newer than this release (a rolling deploy?): serving it as it is")
        else:
            migrate.upgrade(database)
    finally:
        database.dispose()


def check_store(settings: Settings) -> None:
    database = Database(settings.database_url)
    try:
        state = migrate.schema_state(database)
    finally:
        database.dispose()
    if state == "behind":
        raise StoreNotMigrated("the store's schema is not up to date: run `token-broker migrate` first")
    if state == "ahead":
        log.warning("the store's schema is newer than this release (a rolling deploy?): serving it as it is")


def app_from_env() -> Starlette:
    """The app factory for uvicorn's import string (`--factory`): settings from the environment, JSON logs."""
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    check_store(settings)
    return create_app(settings)


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    settings.require_issuer()  # before migrating: a server that cannot start must change nothing
    logs.configure(settings.log_level)
    migrate_store(settings)
    # Forwarded headers are handled inside the app, from TOKEN_BROKER_TRUSTED_PROXIES only; uvicorn's access log is
    # off (the app writes its own request log, with request ids and without query strings).
    if workers > 1:
        # Workers are fresh processes that read their settings from the environment: hand them the store chosen here.
        os.environ["TOKEN_BROKER_DATABASE_URL"] = settings.database_url
    app: Starlette | str = FACTORY if workers > 1 else create_app(settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        factory=workers > 1,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        log_level=settings.log_level,
    )
