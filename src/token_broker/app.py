"""create_app(settings) -> Starlette: routes, middleware, error handlers, and the lifespan that owns the resources."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from anyio import to_thread
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from token_broker.api.openapi import openapi_document
from token_broker.api.redirect import follow
from token_broker.api.routes import ROUTES
from token_broker.api.scoped_routes import endpoint_scopes
from token_broker.app_state import Resources, resources
from token_broker.config import Settings
from token_broker.credentials import SecretHasher
from token_broker.error_responses import api_error, page_error
from token_broker.errors import BrokerError, InternalError, MethodNotAllowed, NotFound, Unavailable
from token_broker.guard.change_watcher import ChangeWatcher
from token_broker.guard.guard import Guard
from token_broker.guard.limiter import RateLimiter
from token_broker.guard.middleware import GuardMiddleware
from token_broker.guard.redis_windows import RedisWindows
from token_broker.oauth.factory import build_server
from token_broker.oauth.routes import TOKEN_ROUTES
from token_broker.observe.endpoint import metrics as metrics_endpoint
from token_broker.observe.metrics import LiveState, Metrics
from token_broker.observe.request_log import RequestLog
from token_broker.scanning import reporters
from token_broker.scanning.endpoint import report as secret_scanning_report
from token_broker.scopes import load_manifests
from token_broker.services.tokens import TokenLifetimes
from token_broker.store.change_listener import ChangeListener
from token_broker.store.database import Database
from token_broker.web.pages import security_headers
from token_broker.web.routes import ROUTES as WEB_ROUTES
from token_broker.web.sessions import SESSION_COOKIE, SESSION_SECONDS
from token_broker.webhooks.delivery_worker import DeliveryWorker
from token_broker.webhooks.transport import make_client as make_webhook_client

log = logging.getLogger("token_broker")
USAGE_FLUSH_SECONDS = 2.0
JSON_PREFIXES = ("/v1/", "/api/", "/oauth/", "/openapi.json", "/.well-known/", "/secret-scanning/")


async def health(request: Request) -> JSONResponse:
    database = resources(request).database

    def ping() -> None:
        with database.read() as session:
            session.execute(text("SELECT 1"))

    await to_thread.run_sync(ping)
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(openapi_document(resources(request).settings.require_issuer()))


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(JSON_PREFIXES)


async def on_broker_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, BrokerError)
    if _wants_json(request):
        return api_error(error)
    return page_error(error, security_headers())


async def on_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if not _wants_json(request):
        page = BrokerError(error.detail, error.headers)
        page.status = error.status_code
        return page_error(page, security_headers())
    if error.status_code == 404:
        return api_error(NotFound("There is no such endpoint: check the method and path."))
    if error.status_code == 405:
        return api_error(MethodNotAllowed("This endpoint does not take that method."), error.headers)
    return JSONResponse({"error": "http_error", "message": error.detail}, status_code=error.status_code)


async def on_store_error(request: Request, _error: Exception) -> Response:
    log.exception("the store failed during a request")
    unavailable = Unavailable("The store is unavailable for a moment; retry shortly.", {"Retry-After": "1"})
    return api_error(unavailable) if _wants_json(request) else page_error(unavailable, security_headers())


async def on_unexpected(request: Request, _error: Exception) -> Response:
    internal = InternalError("Something went wrong on our side.")
    return api_error(internal) if _wants_json(request) else page_error(internal, security_headers())


async def _flush_usage_forever(guard: Guard, database: Database) -> None:
    while True:
        await anyio.sleep(USAGE_FLUSH_SECONDS)
        try:
            await to_thread.run_sync(guard.usage.flush, database)
        except SQLAlchemyError:
            log.warning("could not write last_used_at; will try again")


def connectors_dir(settings: Settings) -> Path:
    """Where the connector manifests are: the setting, else the copy packaged with the wheel, else the checkout's."""
    if settings.connectors_dir is not None:
        return settings.connectors_dir
    packaged = Path(__file__).parent / "connectors"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "connectors"


def create_app(settings: Settings) -> Starlette:
    settings.require_issuer()
    settings = settings.with_secret_key()
    manifests = load_manifests(connectors_dir(settings), endpoint_scopes(ROUTES))
    lifetimes = TokenLifetimes.of(settings.access_seconds(), settings.refresh_token_days, settings.secret_key or "")

    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        database = Database(settings.database_url, **settings.pool_options())
        hasher = await to_thread.run_sync(SecretHasher, settings.hashing)
        limiter = RateLimiter(RedisWindows.from_url(settings.redis_url) if settings.redis_url else None)
        guard = Guard(database, hasher, limiter)
        key_set_client = reporters.make_client()
        stop_hearing_commits = database.on_credential_change(guard.forget)
        # Handlers reach these through request.state; app.state holds them too, for operators' tooling and tests.
        app.state.resources = Resources(
            settings=settings,
            database=database,
            hasher=hasher,
            guard=guard,
            manifests=manifests,
            lifetimes=lifetimes,
        )
        # Each adapter's own handle, reached through that adapter's accessor (see app_state).
        adapters = {
            "authorization_server": build_server(database, manifests, lifetimes, settings.client_auth_failure_limit),
            "metrics": metrics,
            "reporter_keys": reporters.ReporterKeys(settings.secret_scanning_key_urls, key_set_client),
        }
        webhook_client = make_webhook_client()
        listener = None
        if settings.listen_notify and database.dialect == "postgresql":
            listener = ChangeListener(settings.database_url, guard.forget)
        app.state.change_listener = listener
        worker = DeliveryWorker(database, settings, webhook_client) if settings.webhook_worker else None
        metrics.watch(LiveState(guard, limiter, database, listener, worker, (app.state.resources.password_pool,)))
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_flush_usage_forever, guard, database)
                tasks.start_soon(ChangeWatcher(guard, database).run_forever)
                tasks.start_soon(limiter.watch_forever)
                if listener is not None:
                    tasks.start_soon(listener.run_forever)
                if worker is not None:
                    tasks.start_soon(worker.run_forever)
                yield {"resources": app.state.resources, **adapters}
                tasks.cancel_scope.cancel()
            await to_thread.run_sync(guard.usage.flush, database)
        finally:
            stop_hearing_commits()
            guard.pool.close()
            app.state.resources.password_pool.close()
            metrics.unwatch()
            await limiter.close()
            await webhook_client.aclose()
            await key_set_client.aclose()
            database.dispose()

    dashboard = SessionMiddleware(
        Router(WEB_ROUTES),
        secret_key=settings.secret_key or "",
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_SECONDS,
        same_site="lax",
        https_only=settings.require_issuer().startswith("https://"),
    )
    routes = [
        Route("/healthz", health),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi),
        Route("/r/{slug}", follow, methods=["GET"]),
        Route("/secret-scanning/github", secret_scanning_report, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Mount("/v1", app=GuardMiddleware(Router(ROUTES), api_error)),
        *TOKEN_ROUTES,
        Mount("", app=dashboard),
    ]
    middleware = []
    if settings.trusted_proxies:
        trusted = [str(network) for network in settings.trusted_proxies]
        middleware.append(Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted))
    middleware.append(Middleware(RequestLog, metrics=metrics))
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            BrokerError: on_broker_error,
            HTTPException: on_http_error,
            SQLAlchemyError: on_store_error,
            Exception: on_unexpected,
        },
    )
