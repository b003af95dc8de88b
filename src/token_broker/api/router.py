"""The workspace API's router: from the path to the route's endpoint in one step on every request that finds its route.

Starlette's Router tries each route's pattern in turn, then runs the endpoint inside two more ASGI layers (one that
builds the Request, one that hands errors to the app's handlers). The API's routes are few and fixed, so this router
finds a path without parameters in a dict and the others by their patterns, then calls the endpoint and hands its
errors to the same handlers, in one step. Everything else (an unknown path, another method, a trailing slash) goes to
Starlette's Router, so those answers stay exactly Starlette's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from starlette._utils import get_route_path, is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Match, Mount, Router
from starlette.types import ExceptionHandler, Receive, Scope, Send

from token_broker.api.scoped_routes import ApiRoute

# (a path's pattern, its parameters' converters, method -> route) for the paths with parameters, in table order
_Templated = tuple[re.Pattern[str], dict[str, Any], dict[str, ApiRoute]]


def _methods_of(route: ApiRoute) -> set[str]:
    return route.methods or set()


class ApiRouter(Router):
    def __init__(self, routes: Sequence[ApiRoute]) -> None:
        super().__init__(list(routes))
        self._static: dict[str, dict[str, ApiRoute]] = {}
        templated: dict[str, _Templated] = {}
        for route in routes:
            if route.param_convertors:
                entry = templated.setdefault(route.path, (route.path_regex, route.param_convertors, {}))
                by_method = entry[2]
            else:
                by_method = self._static.setdefault(route.path, {})
            for method in _methods_of(route):
                by_method.setdefault(method, route)  # the first route that takes a method wins, as in Router
        self._templated = tuple(templated.values())

    def _find(self, scope: Scope) -> tuple[ApiRoute, dict[str, Any]] | None:
        path = get_route_path(scope)
        method = scope["method"]
        static = self._static.get(path)
        if static is not None:
            route = static.get(method)
            return None if route is None else (route, {})
        for pattern, convertors, by_method in self._templated:
            match = pattern.match(path)
            if match is not None:
                route = by_method.get(method)
                if route is None:
                    return None
                return route, {name: convertors[name].convert(value) for name, value in match.groupdict().items()}
        return None

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._find(scope) if scope["type"] == "http" else None
        if found is None:
            await super().app(scope, receive, send)
            return
        route, params = found
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {**scope.get("path_params", {}), **params} if params else scope.get("path_params", {})
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as error:
            handler = handler_for(scope.get("starlette.exception_handlers", _NO_HANDLERS), error)
            if handler is None:
                raise
            response = await handled(handler, request, error)
        await response(scope, receive, send)


Handlers = tuple[dict[Any, ExceptionHandler], dict[int, ExceptionHandler]]  # by class, by status (Starlette's pair)
_NO_HANDLERS: Handlers = ({}, {})


def handler_for(handlers: Handlers, error: Exception) -> Any:
    """The app's handler for the error, as Starlette's exception layers find it (an HTTPException's status first,
    then the error's classes in order), or None to let it rise."""
    by_class, by_status = handlers
    if isinstance(error, HTTPException) and error.status_code in by_status:
        return by_status[error.status_code]
    for kind in type(error).__mro__:
        if kind in by_class:
            return by_class[kind]
    return None


async def handled(handler: Any, request: Request, error: Exception) -> Any:
    """The handler's response to the error (a plain function runs in the thread pool, as Starlette runs it)."""
    if is_async_callable(handler):
        response = await handler(request, error)
    else:
        response = await run_in_threadpool(handler, request, error)
    error.__traceback__ = None  # a reused exception instance would gather tracebacks across requests
    return response


class PrefixMount(Mount):
    """A Mount whose path has no parameters, matched by its prefix rather than by its pattern: the same matches as
    Mount at a fraction of the cost, for the busiest mount. A path with a newline, where the pattern's `.` and `$`
    have their own rules, is left to the pattern."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        route_path = get_route_path(scope)
        if "\n" in route_path:
            return super().matches(scope)
        if not route_path.startswith(self.path + "/"):
            return Match.NONE, {}
        root_path = scope.get("root_path", "")
        return Match.FULL, {
            "path_params": dict(scope.get("path_params", {})),
            "app_root_path": scope.get("app_root_path", root_path),
            "root_path": root_path + self.path,
            "endpoint": self.app,
        }
