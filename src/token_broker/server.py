"""Running the app under uvicorn: migrate first, then serve."""

from __future__ import annotations

import uvicorn

from token_broker.app import create_app
from token_broker.config import Settings
from token_broker.store import migrate
from token_broker.store.database import Database


def migrate_store(settings: Settings) -> None:
    database = Database(settings.database_url)
    try:
        migrate.upgrade(database)
    finally:
        database.dispose()


def serve(settings: Settings, host: str, port: int) -> None:
    migrate_store(settings)
    # Forwarded headers are handled inside the app, from TOKEN_BROKER_TRUSTED_PROXIES only.
    uvicorn.run(create_app(settings), host=host, port=port, proxy_headers=False, server_header=False)
