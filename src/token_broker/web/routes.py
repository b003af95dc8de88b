"""The dashboard's route table, served behind the session middleware."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from token_broker.web import (
    account,
    activity,
    admin_api,
    audit_page,
    auth_routes,
    consent,
    organizations,
    panel,
    people,
    switcher,
)

STATIC = Path(__file__).parent / "static"
WORKSPACE = "/workspaces/{account_id}"

ROUTES: list[BaseRoute] = [
    Route("/", auth_routes.home, methods=["GET"]),
    Route("/login", auth_routes.login_page, methods=["GET"]),
    Route("/login", auth_routes.login, methods=["POST"]),
    Route("/logout", auth_routes.logout, methods=["POST"]),
    Route("/api/session", auth_routes.session_json, methods=["GET"]),
    Route("/workspaces", switcher.switch_workspace, methods=["GET"]),
    Route(f"{WORKSPACE}/api-access", panel.panel_page, methods=["GET"]),
    Route(f"{WORKSPACE}/api-access/keys", panel.generate_key, methods=["POST"]),
    Route(f"{WORKSPACE}/api-access/keys/{{credential_id}}/rotate", panel.rotate_key, methods=["POST"]),
    Route(f"{WORKSPACE}/api-access/keys/{{credential_id}}/revoke", panel.revoke_key, methods=["POST"]),
    Route(f"{WORKSPACE}/api-access/connections/{{connection_id}}/disconnect", panel.disconnect, methods=["POST"]),
    Route(f"{WORKSPACE}/api-access/clients", panel.register_n8n, methods=["POST"]),
    Route(f"{WORKSPACE}/api-access/clients/{{client_id}}/rotate", panel.rotate_client_secret, methods=["POST"]),
    Route(f"{WORKSPACE}/api-access/clients/{{client_id}}/revoke", panel.revoke_client, methods=["POST"]),
    Route(f"{WORKSPACE}/api-access/leak-response", panel.change_leak_response, methods=["POST"]),
    Route(f"{WORKSPACE}/audit", audit_page.audit_page, methods=["GET"]),
    *admin_api.ROUTES,
    *people.ROUTES,
    *account.ROUTES,
    *activity.ROUTES,
    *organizations.ROUTES,
    Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    Route("/oauth/authorize", consent.authorize_page, methods=["GET"]),
    Route("/oauth/authorize", consent.authorize_decision, methods=["POST"]),
]
