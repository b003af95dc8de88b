"""The route template a request log line and the request metrics name: the template of the route that answered.

The app that mounts routers in front of middleware (the guard in front of the API's router) says which routes each
mount holds, so that an answer given before the mounted router ran (the guard's refusals) is still named by its route
template. Never the path itself, which may carry anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Scope

UNMATCHED = "unmatched"


class RouteTemplates:
    """`mounted`: a mount's path ("/v1") to the routes of the router it leads to."""

    def __init__(self, mounted: Mapping[str, Sequence[BaseRoute]] | None = None) -> None:
        self._mounted = {
            path: tuple(r for r in routes if isinstance(r, Route)) for path, routes in (mounted or {}).items()
        }

    def of(self, scope: Scope, root_path: str) -> str:
        """The template ("/v1/workspaces/{account_id}/links") of the route that answered, or "unmatched".

        `root_path`: the application's own root path, taken before any mount added to the scope's."""
        route = scope.get("route")
        if isinstance(route, Mount):
            route = self._inner_route(route, scope)
        if not isinstance(route, Route):
            return UNMATCHED
        path: str = scope.get("root_path", "")[len(root_path) :] + route.path
        return path

    def _inner_route(self, mount: Mount, scope: Scope) -> Route | None:
        for route in self._mounted.get(mount.path, ()):
            if route.matches(scope)[0] is not Match.NONE:
                return route
        return None
