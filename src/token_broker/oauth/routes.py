"""The authorization server's routes, which need no dashboard session. The consent page, which does, is served by the
dashboard (`token_broker.web.consent`)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from token_broker.oauth import token_routes
from token_broker.oauth.token_routes import AllowOnly

# Each takes every method and answers those it does not serve with 405 and Allow, before the dashboard's mount.
TOKEN_ROUTES: list[BaseRoute] = [
    Route("/oauth/token", AllowOnly(("POST",), token_routes.token)),
    Route("/oauth/revoke", AllowOnly(("POST",), token_routes.revoke)),
    Route("/oauth/introspect", AllowOnly(("POST",), token_routes.introspect)),
    Route("/.well-known/oauth-authorization-server", AllowOnly(("GET", "HEAD"), token_routes.metadata)),
]
