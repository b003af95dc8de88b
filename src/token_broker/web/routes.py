"""The dashboard's route table, served behind the session middleware."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from token_broker.oauth.routes import AUTHORIZE_ROUTES
from token_broker.web import admin_api, auth_routes

STATIC = Path(__file__).parent / "static"

ROUTES: list[BaseRoute] = [
    Route("/", auth_routes.home, methods=["GET"]),
    Route("/login", auth_routes.login_page, methods=["GET"]),
    Route("/login", auth_routes.login, methods=["POST"]),
    Route("/logout", auth_routes.logout, methods=["POST"]),
    Route("/api/session", auth_routes.session_json, methods=["GET"]),
    *admin_api.ROUTES,
    Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    *AUTHORIZE_ROUTES,
]
