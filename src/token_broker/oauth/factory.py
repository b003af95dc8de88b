"""Assembling the authorization server: our grants and endpoints on authlib's AuthorizationServer."""

from __future__ import annotations

from token_broker.config import DEFAULT_CLIENT_AUTH_FAILURE_LIMIT
from token_broker.oauth.auth_failures import AuthFailures
from token_broker.oauth.grants import CodeGrant, RefreshGrant, S256Only
from token_broker.oauth.revocation_introspection import Introspection, Revocation
from token_broker.oauth.server import BrokerAuthorizationServer
from token_broker.scopes import Manifest
from token_broker.services.tokens import TokenLifetimes
from token_broker.store.database import Database


def build_server(
    database: Database,
    manifests: dict[str, Manifest],
    lifetimes: TokenLifetimes,
    auth_failure_limit: str = DEFAULT_CLIENT_AUTH_FAILURE_LIMIT,
) -> BrokerAuthorizationServer:
    """PKCE is optional (Zapier's local tester and older platform setups send none) but S256-only when used."""
    server = BrokerAuthorizationServer(database, manifests, lifetimes, AuthFailures(auth_failure_limit))
    server.register_grant(CodeGrant, [S256Only(required=False)])
    server.register_grant(RefreshGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    return server
