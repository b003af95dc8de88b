"""create_app(settings) -> Starlette: routes, middleware, error handlers, and the lifespan that owns the resources."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import anyio
from anyio import to_thread
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from token_broker.api.lane import ApiLane
from token_broker.api.openapi import openapi_document
from token_broker.api.redirect import follow
from token_broker.api.router import ApiRouter, PrefixMount
from token_broker.api.routes import API_ROUTES, ROUTES
from token_broker.api.scoped_routes import endpoint_scopes
from token_broker.app_state import Resources, resources
from token_broker.body_limit import BodyLimit
from token_broker.config import Settings
from token_broker.credentials import SecretHasher
from token_broker.error_responses import answers_json, api_error, page_error
from token_broker.errors import BrokerError, InternalError, MethodNotAllowed, NotFound, Unavailable
from token_broker.guard.change_watcher import ChangeWatcher
from token_broker.guard.guard import Guard
from token_broker.guard.limiter import RateLimiter
from token_broker.guard.middleware import GuardMiddleware
from token_broker.guard.redis_windows import RedisWindows
from token_broker.oauth.factory import build_server
from token_broker.oauth.routes import TOKEN_ROUTES
from token_broker.observe import logs
from token_broker.observe.abuse_metrics import AbuseState
from token_broker.observe.endpoint import metrics as metrics_endpoint
from token_broker.observe.health import health, missing_manifests, readiness
from token_broker.observe.metrics import LiveState, Metrics
from token_broker.observe.request_log import RequestLog
from token_broker.observe.route_templates import RouteTemplates
from token_broker.scanning import reporters
from token_broker.scanning.endpoint import report as secret_scanning_report
from token_broker.scopes import Manifest, load_manifests
from token_broker.services import link_activity
from token_broker.services.click_batches import FLUSH_SECONDS as CLICK_FLUSH_SECONDS
from token_broker.services.click_batches import ClickRecorder
from token_broker.services.tokens import TokenLifetimes
from token_broker.store.change_listener import ChangeListener
from token_broker.store.database import Database
from token_broker.store.models import utcnow
from token_broker.web.pages import security_headers
from token_broker.web.routes import ROUTES as WEB_ROUTES
from token_broker.web.sessions import SESSION_COOKIE, SESSION_SECONDS
from token_broker.webhooks.delivery_worker import DeliveryWorker
from token_broker.webhooks.transport import make_client as make_webhook_client

log = logging.getLogger("token_broker")
USAGE_FLUSH_SECONDS = 2.0
ACTIVITY_PRUNE_SECONDS = 3600.0
API_MOUNT = "/v1"


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(openapi_document(resources(request).settings.require_issuer()))


def _wants_json(request: Request) -> bool:
    return answers_json(request.url.path)


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


async def _flush_clicks_forever(clicks: ClickRecorder, database: Database) -> None:
    while True:
        await anyio.sleep(CLICK_FLUSH_SECONDS)
        try:
            await to_thread.run_sync(clicks.flush, database)
        except SQLAlchemyError:
            log.warning("could not write %d clicks; will try again", clicks.pending)


async def _prune_activity_forever(database: Database, retention_days: int) -> None:
    """Recent activity is kept for its retention period: pruned at start, then every hour."""
    while True:
        try:
            older_than = utcnow() - timedelta(days=retention_days)
            await to_thread.run_sync(link_activity.prune_activity, database, older_than)
        except SQLAlchemyError:
            log.warning("could not prune old link activity; will try again")
        await anyio.sleep(ACTIVITY_PRUNE_SECONDS)


def connectors_dir(settings: Settings) -> Path:
    """Where the connector manifests are: the setting, else the copy packaged with the wheel, else the checkout's."""
    if settings.connectors_dir is not None:
        return settings.connectors_dir
    packaged = Path(__file__).parent / "connectors"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "connectors"


def load_platform_manifests(settings: Settings) -> dict[str, Manifest]:
    """The platforms' manifests; each one missing is logged as a warning (its clients cannot connect) and /readyz
    reports it, so a package built without them is noticed at start, not at the first connect."""
    directory = connectors_dir(settings)
    manifests = load_manifests(directory, endpoint_scopes(ROUTES))
    for platform in missing_manifests(manifests):
        log.warning(
            "no manifest for platform %s: looked for %s; no %s client can connect until it is there "
            "(set TOKEN_BROKER_CONNECTORS_DIR, or install a package that carries the manifests)",
            platform,
            directory / platform / "manifest.json",
            platform,
        )
    return manifests


def create_app(settings: Settings) -> Starlette:
    settings.require_issuer()
    settings = settings.with_secret_key()
    manifests = load_platform_manifests(settings)
    lifetimes = TokenLifetimes.of(settings.access_seconds(), settings.refresh_token_days, settings.secret_key or "")

    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        database = Database(settings.database_url, **settings.pool_options())
        hasher = await to_thread.run_sync(SecretHasher, settings.hashing)
        limiter = RateLimiter(RedisWindows.from_url(settings.redis_url) if settings.redis_url else None)
        guard = Guard(database, hasher, limiter)
        key_set_client = reporters.make_client()
        server = build_server(database, manifests, lifetimes, settings.client_auth_failure_limit)

        def forget(credential_id: str) -> None:
            guard.forget(credential_id)
            server.forget_change(credential_id)

        stop_hearing_commits = database.on_credential_change(forget)
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
            "authorization_server": server,
            "metrics": metrics,
            "reporter_keys": reporters.ReporterKeys(settings.secret_scanning_key_urls, key_set_client),
        }
        webhook_client = make_webhook_client()
        listener = None
        if settings.listen_notify and database.dialect == "postgresql":
            listener = ChangeListener(settings.database_url, forget)
        app.state.change_listener = listener
        app.state.authorization_server = server
        worker = DeliveryWorker(database, settings, webhook_client) if settings.webhook_worker else None
        metrics.watch(LiveState(guard, limiter, database, listener, worker, (app.state.resources.password_pool,)))
        state = app.state.resources
        abuse = AbuseState(state.redirect_limit, state.clicks, state.sign_in_failures)
        metrics.registry.register(abuse)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_flush_usage_forever, guard, database)
                tasks.start_soon(_flush_clicks_forever, app.state.resources.clicks, database)
                tasks.start_soon(ChangeWatcher(guard, database, (server,)).run_forever)
                tasks.start_soon(_prune_activity_forever, database, settings.activity_retention_days)
                tasks.start_soon(limiter.watch_forever)
                if listener is not None:
                    tasks.start_soon(listener.run_forever)
                if worker is not None:
                    tasks.start_soon(worker.run_forever)
                yield {"resources": app.state.resources, **adapters}
                tasks.cancel_scope.cancel()
            await to_thread.run_sync(guard.usage.flush, database)
            await to_thread.run_sync(app.state.resources.clicks.flush, database)
        finally:
            stop_hearing_commits()
            guard.pool.close()
            app.state.resources.password_pool.close()
            metrics.unwatch()
            metrics.registry.unregister(abuse)
            await limiter.close()
            await webhook_client.aclose()
            await key_set_client.aclose()
            database.dispose()
            logs.write_waiting()  # every request has been answered and logged by now

    dashboard = SessionMiddleware(
        Router(WEB_ROUTES),
        secret_key=settings.secret_key or "",
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_SECONDS,
        same_site="lax",
        https_only=settings.require_issuer().startswith("https://"),
    )
    api = PrefixMount(API_MOUNT, app=GuardMiddleware(ApiRouter(API_ROUTES), api_error))
    routes = [
        api,  # first: the busiest, overlaps none (the API's lane below takes its requests straight to it)
        Route("/healthz", health),
        Route("/readyz", readiness),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi),
        Route("/r/{slug}", follow, methods=["GET"]),
        Route("/secret-scanning/github", secret_scanning_report, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        *TOKEN_ROUTES,
        Mount("", app=dashboard),
    ]
    # The guard answers some requests before the API's router runs: the request log names them from this table.
    templates = RouteTemplates({API_MOUNT: ROUTES, "": WEB_ROUTES})
    middleware = []
    if settings.trusted_proxies:
        trusted = [str(network) for network in settings.trusted_proxies]
        middleware.append(Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted))
    middleware.append(Middleware(RequestLog, metrics=metrics, templates=templates))
    middleware.append(Middleware(BodyLimit))
    middleware.append(Middleware(ApiLane, mount=api))
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
