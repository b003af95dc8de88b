"""The workspace API's route table: method, path, the scope each needs, its handler and what its document says."""

from __future__ import annotations

from starlette.routing import BaseRoute

from token_broker import wire
from token_broker.api import links, webhook_subscriptions
from token_broker.api.me import me
from token_broker.api.scoped_routes import ApiRoute, Operation, QueryInt, api_route

WORKSPACE = "/workspaces/{account_id}"
SLUG_TAKEN = {409: "the slug is taken"}

API_ROUTES: list[ApiRoute] = [
    api_route("GET", "/me", None, me, Operation("The presented credential and its workspace", 200, wire.Me, "who")),
    api_route(
        "GET",
        f"{WORKSPACE}/links",
        "links:read",
        links.list_links,
        Operation(
            "List links, newest first",
            200,
            wire.LinkList,
            "a page of links",
            query=(QueryInt("limit", 1, 100), "starting_after"),
        ),
    ),
    api_route(
        "POST",
        f"{WORKSPACE}/links",
        "links:write",
        links.create_link,
        Operation("Shorten a link", 201, wire.Link, "created", body=wire.LinkCreate, refusals=SLUG_TAKEN),
    ),
    api_route(
        "GET",
        f"{WORKSPACE}/links/{{link_id}}",
        "links:read",
        links.get_link,
        Operation("A link", 200, wire.Link, "the link"),
    ),
    api_route(
        "PATCH",
        f"{WORKSPACE}/links/{{link_id}}",
        "links:write",
        links.update_link,
        Operation("Change a link", 200, wire.Link, "changed", body=wire.LinkUpdate, refusals=SLUG_TAKEN),
    ),
    api_route(
        "DELETE",
        f"{WORKSPACE}/links/{{link_id}}",
        "links:write",
        links.delete_link,
        Operation("Delete a link", 204, None, "deleted"),
    ),
    api_route(
        "GET",
        f"{WORKSPACE}/links/{{link_id}}/analytics",
        "analytics:read",
        links.link_analytics,
        Operation(
            "Clicks per day and top referrers", 200, wire.Analytics, "the report", query=(QueryInt("days", 1, 365),)
        ),
    ),
    api_route(
        "GET",
        f"{WORKSPACE}/hooks",
        "hooks:write",
        webhook_subscriptions.list_hooks,
        Operation("This credential's hooks", 200, wire.HookList, "the hooks"),
    ),
    api_route(
        "POST",
        f"{WORKSPACE}/hooks",
        "hooks:write",
        webhook_subscriptions.create_hook,
        Operation(
            "Subscribe to an event: deliveries are signed POSTs (Standard Webhooks) to target_url",
            201,
            wire.CreatedHook,
            "created, with its signing secret shown this once",
            body=wire.HookCreate,
            refusals={409: "this connection or key already has the most hooks allowed"},
            details=(
                "Needs the `hooks:write` scope, and the scope that reads the event's data: `links:read` for link "
                "events, `analytics:read` for `link.clicked`, a workspace key with full access for admin notices "
                "(403 insufficient_scope otherwise). Deliveries stop while the owner lacks that scope."
            ),
        ),
    ),
    api_route(
        "GET",
        f"{WORKSPACE}/hooks/{{hook_id}}",
        "hooks:write",
        webhook_subscriptions.get_hook,
        Operation(
            "One of this credential's hooks: whether the hook it saved still exists, and its status",
            200,
            wire.Hook,
            "the hook",
        ),
    ),
    api_route(
        "DELETE",
        f"{WORKSPACE}/hooks/{{hook_id}}",
        "hooks:write",
        webhook_subscriptions.delete_hook,
        Operation("Unsubscribe: delete a hook", 204, None, "deleted"),
    ),
]

ROUTES: list[BaseRoute] = list(API_ROUTES)  # the same table, typed as Starlette's routers and the document take it
