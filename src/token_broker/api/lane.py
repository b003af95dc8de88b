"""Requests for the workspace API go from the app's middleware straight to the API's mount: the same answers, without
Starlette's exception layer and its walk of the app's routes on every API request.

Starlette runs each request through its exception layer (which hands errors to the app's handlers) and then its
Router, which tries each route in turn. The API's mount is the Router's first route, so any request it takes would reach
it first anyway. The lane, the innermost of the app's middleware, hands those requests to the mount directly, and their
errors to the same handlers by the same rules: an HTTPException's status first, then the error's classes; none once the
answer has begun (then, as there, a RuntimeError rises). Every other request goes the usual way.
"""

from __future__ import annotations

from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.routing import Match, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from token_broker.api.router import Handlers, handled, handler_for


class ApiLane:
    def __init__(self, app: ASGIApp, mount: Mount) -> None:
        router = getattr(app, "app", None)
        if not isinstance(app, ExceptionMiddleware) or not isinstance(router, Router) or router.routes[:1] != [mount]:
            raise TypeError("ApiLane must be the app's innermost middleware, and its mount the app's first route")
        self.app = app
        self.mount = mount
        self.router = router
        self.handlers: Handlers = (app._exception_handlers, app._status_handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        match, child_scope = self.mount.matches(scope)
        if match is not Match.FULL:
            await self.app(scope, receive, send)
            return
        # what the exception layer and the Router put in the scope on their way to the mount
        scope["starlette.exception_handlers"] = self.handlers
        if "router" not in scope:
            scope["router"] = self.router
        scope["route"] = self.mount
        scope.update(child_scope)
        started = False

        async def noting_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.mount.handle(scope, receive, noting_start)
        except Exception as error:
            handler = handler_for(self.handlers, error)
            if handler is None:
                raise
            if started:
                raise RuntimeError("Caught handled exception, but response already started.") from error
            response = await handled(handler, Request(scope, receive, send), error)
            if response is not None:
                await response(scope, receive, noting_start)
