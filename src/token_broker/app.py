"""create_app(settings) -> Starlette: routes, middleware, error handlers, and the lifespan that owns the resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from anyio import to_thread
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from token_broker.config import Settings
from token_broker.credentials import SecretHasher
from token_broker.store.database import Database


@dataclass(frozen=True)
class Resources:
    """What the lifespan opens and every handler reaches through request.state.resources."""

    settings: Settings
    database: Database
    hasher: SecretHasher


def resources(request: Request) -> Resources:
    found: Resources = request.state.resources
    return found


async def health(request: Request) -> JSONResponse:
    database = resources(request).database

    def ping() -> None:
        with database.read() as session:
            session.execute(text("SELECT 1"))

    await to_thread.run_sync(ping)
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


def create_app(settings: Settings) -> Starlette:
    settings = settings.with_secret_key()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Resources]]:
        database = Database(settings.database_url)
        hasher = await to_thread.run_sync(SecretHasher, settings.hashing)
        try:
            yield {"resources": Resources(settings=settings, database=database, hasher=hasher)}
        finally:
            database.dispose()

    return Starlette(routes=[Route("/healthz", health)], lifespan=lifespan)
