"""The workspace API's route table: method, path, the scope each needs, and its handler."""

from __future__ import annotations

from starlette.routing import BaseRoute

from token_broker.api import links, webhook_subscriptions
from token_broker.api.me import me
from token_broker.api.scoped_routes import api_route

WORKSPACE = "/workspaces/{account_id}"

ROUTES: list[BaseRoute] = [
    api_route("GET", "/me", None, me),
    api_route("GET", f"{WORKSPACE}/links", "links:read", links.list_links),
    api_route("POST", f"{WORKSPACE}/links", "links:write", links.create_link),
    api_route("GET", f"{WORKSPACE}/links/{{link_id}}", "links:read", links.get_link),
    api_route("PATCH", f"{WORKSPACE}/links/{{link_id}}", "links:write", links.update_link),
    api_route("DELETE", f"{WORKSPACE}/links/{{link_id}}", "links:write", links.delete_link),
    api_route("GET", f"{WORKSPACE}/links/{{link_id}}/analytics", "analytics:read", links.link_analytics),
    api_route("GET", f"{WORKSPACE}/hooks", "hooks:write", webhook_subscriptions.list_hooks),
    api_route("POST", f"{WORKSPACE}/hooks", "hooks:write", webhook_subscriptions.create_hook),
    api_route("DELETE", f"{WORKSPACE}/hooks/{{hook_id}}", "hooks:write", webhook_subscriptions.delete_hook),
]
