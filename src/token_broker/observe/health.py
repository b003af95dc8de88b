"""GET /healthz (alive: the process answers and its store does) and GET /readyz (ready for traffic).

Readiness covers what a fresh instance can get wrong without crashing: the store's schema (this release's
migrations applied; a store a newer release already migrated, during a rolling deploy, still counts as ready), every
platform's manifest loaded (a platform without one cannot connect), and Redis answering when TOKEN_BROKER_REDIS_URL
is set. Not ready: 503 with a JSON body that names each check that failed. Neither endpoint needs a credential, so
neither says more than a check's name and state: no paths, addresses or error texts (those go to the log).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio
from anyio import to_thread
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse

from token_broker.app_state import Resources, resources
from token_broker.guard.redis_windows import SharedLimitsUnavailable
from token_broker.scopes import PLATFORMS, Manifest
from token_broker.store import migrate

log = logging.getLogger("token_broker")
REDIS_SECONDS = 2.0
NO_STORE = {"Cache-Control": "no-store"}


def missing_manifests(manifests: Mapping[str, Manifest]) -> list[str]:
    return [platform for platform in PLATFORMS if platform not in manifests]


async def health(request: Request) -> JSONResponse:
    database = resources(request).database

    def ping() -> None:
        with database.read() as session:
            session.execute(text("SELECT 1"))

    await to_thread.run_sync(ping)
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


def _schema(found: Resources) -> str:
    try:
        return migrate.schema_state(found.database)
    except SQLAlchemyError:
        log.warning("readiness: the store did not answer", exc_info=True)
        return "unreachable"


async def _redis(found: Resources) -> str:
    shared = found.guard.rate_limiter.shared
    if shared is None:
        return "not configured"
    try:
        with anyio.fail_after(REDIS_SECONDS):
            await shared.ping()
    except (SharedLimitsUnavailable, TimeoutError) as error:
        log.warning("readiness: Redis did not answer (%s)", type(error).__name__)
        return "unreachable"
    return "ok"


async def readiness(request: Request) -> JSONResponse:
    found = resources(request)
    schema = await to_thread.run_sync(_schema, found)
    missing = missing_manifests(found.manifests)
    reachable = schema != "unreachable"
    checks: dict[str, object] = {
        "store": "ok" if reachable else "unreachable",
        "schema": schema if reachable else "unknown",
        "manifests": {platform: "missing" if platform in missing else "ok" for platform in PLATFORMS},
        "redis": await _redis(found),
    }
    failed = [
        name
        for name, bad in (
            ("store", not reachable),
            ("schema", schema not in ("current", "ahead")),
            ("manifests", bool(missing)),
            ("redis", checks["redis"] == "unreachable"),
        )
        if bad
    ]
    body: dict[str, object] = {"status": "not_ready" if failed else "ready", "checks": checks}
    if failed:
        body["failed"] = failed
    return JSONResponse(body, status_code=503 if failed else 200, headers=NO_STORE)
