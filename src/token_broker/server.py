"""Running the app under uvicorn: migrate once, then serve in one process or in several workers.

`token-broker serve --workers N` migrates in the parent, opens the listening socket (`listening_socket`), then lets
uvicorn's supervisor start N worker processes on it, each building its app with `app_from_env`. The same factory
serves `uvicorn token_broker.server:app_from_env --factory` directly, after `token-broker migrate`: a worker refuses to
start on a store that lacks this release's migrations, and serves a store that a newer release already migrated (a
rolling deploy, whose migrations only add).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from token_broker.app import create_app
from token_broker.config import Settings
from token_broker.observe import logs
from token_broker.store import migrate
from token_broker.store.database import Database

log = logging.getLogger("token_broker")
uvicorn_log = logging.getLogger("uvicorn.error")  # where uvicorn says where it listens
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
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=workers,
        factory=workers > 1,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        log_level=settings.log_level,
    )
    if workers == 1:
        server = uvicorn.Server(config)
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        if not server.started:
            sys.exit(STARTUP_FAILURE)
        return
    try:
        shared = listening_socket(host, port)
    except OSError as error:
        log.error("cannot listen on %s port %d: %s", host, port, error)
        sys.exit(STARTUP_FAILURE)
    uvicorn_log.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, shared.getsockname()[1])
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[shared]).run()


def listening_socket(host: str, port: int) -> socket.socket:
    """The workers' shared listening socket, made as asyncio makes its own: its protocol is TCP by number.

    Connections accepted on a socket inherit its protocol number, and asyncio turns Nagle's algorithm off
    (TCP_NODELAY) only on connections whose number says TCP. uvicorn's own socket for `--workers` leaves the number at
    0, so every answer on a kept-alive connection after the first waited for the client's delayed ACK, about 40 ms on
    Linux, and four workers answered refresh grants at half the rate of one (docs/performance.md)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    shared = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        shared.bind((host, port))
    except OSError:
        shared.close()
        raise
    shared.set_inheritable(True)
    return shared
