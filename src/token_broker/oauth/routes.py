"""The authorization server's routes. AUTHORIZE_ROUTES need the dashboard session; TOKEN_ROUTES do not."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from token_broker.oauth import consent, token_routes

AUTHORIZE_ROUTES: list[BaseRoute] = [
    Route("/oauth/authorize", consent.authorize_page, methods=["GET"]),
    Route("/oauth/authorize", consent.authorize_decision, methods=["POST"]),
]
TOKEN_ROUTES: list[BaseRoute] = [
    Route("/oauth/token", token_routes.token, methods=["POST"]),
    Route("/oauth/revoke", token_routes.revoke, methods=["POST"]),
    Route("/oauth/introspect", token_routes.introspect, methods=["POST"]),
    Route("/.well-known/oauth-authorization-server", token_routes.metadata, methods=["GET"]),
]
