"""The API's own mount, router and lane answer exactly as Starlette's Mount, Router and exception layer would, for any
method and path.

Apps with the workspace API's route table (method and path of every route, each with an endpoint that echoes what
routing gave it and fails on demand) are asked the same requests: one mounted with Starlette's Mount and Router, one
with `PrefixMount` and `ApiRouter`, and one with those and `ApiLane` in the app's middleware, each before a catch-all
mount as the dashboard's, each mount's app behind a layer that refuses some requests before routing as the guard does.
Status, headers, body, whatever error rises out of the app and what routing leaves in the scope for the request log
must be the same, including unknown paths, other
methods, trailing slashes, errors the app's handlers render, errors none handles, and an error once the answer has
begun.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from token_broker.api.lane import ApiLane
from token_broker.api.router import ApiRouter, PrefixMount
from token_broker.api.routes import API_ROUTES
from token_broker.api.scoped_routes import ApiRoute, Operation
from token_broker.errors import BrokerError, NotFound

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class Unhandled(Exception):
    """No handler is registered for it: it rises out of the app."""


async def echo(request: Request) -> Response:
    params = dict(request.path_params)
    for value in params.values():
        if value == "broker-error":
            raise NotFound("No such thing.")
        if value == "http-error":
            raise HTTPException(409, "taken")
        if value == "unhandled":
            raise Unhandled
        if value == "value-error":
            raise ValueError("handled by the catch-all")
        if value == "lookup-error":
            raise KeyError("handled by a plain function, in a worker thread")
        if value == "late-error":
            return StreamingResponse(fail_midway(), media_type="text/plain")
    route = request.scope["route"]
    return JSONResponse(
        {"route": f"{request.method} {route.path}", "params": params, "root": request.scope["root_path"]}
    )


async def fail_midway() -> AsyncIterator[bytes]:
    yield b"a first part, then "
    raise NotFound("An error a handler takes, once the answer has begun.")


class Refusing:
    """Refuses a request before routing, as the guard does, with an error the app's handlers render."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "refused" in scope["path"]:
            raise NotFound("Refused before routing.")
        if "not-http" in scope["path"]:
            raise HTTPException(418, "refused before routing")
        await self.app(scope, receive, send)


def echo_routes() -> list[ApiRoute]:
    operation = Operation("echo", 200, None, "echo")
    return [ApiRoute(route.method, route.path, route.scope, echo, operation) for route in API_ROUTES]


async def health(_request: Request) -> Response:
    return JSONResponse({})


async def dashboard(request: Request) -> Response:
    return PlainTextResponse(f"dashboard {request.method} {request.path_params['rest']}")


async def on_broker_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, BrokerError)
    return JSONResponse({"error": error.code}, status_code=error.status)


async def on_http_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return JSONResponse({"http": error.status_code}, status_code=error.status_code, headers=error.headers)


def on_lookup(_request: Request, _error: Exception) -> Response:
    return JSONResponse({"error": "lookup"}, status_code=422)


async def on_anything(_request: Request, _error: Exception) -> Response:
    return JSONResponse({"error": "internal"}, status_code=500)


def app_with(mount: BaseRoute, lane: bool = False) -> Starlette:
    return Starlette(
        routes=[mount, Route("/healthz", health), Mount("", app=Router([Route("/{rest:path}", dashboard)]))],
        middleware=[Middleware(ApiLane, mount=mount)] if lane else [],
        exception_handlers={
            BrokerError: on_broker_error,
            HTTPException: on_http_error,
            ValueError: on_anything,
            LookupError: on_lookup,
        },
    )


STARLETTE = app_with(Mount("/v1", app=Refusing(Router(list(echo_routes())))))
OURS = app_with(PrefixMount("/v1", app=Refusing(ApiRouter(echo_routes()))))
LANE = app_with(PrefixMount("/v1", app=Refusing(ApiRouter(echo_routes()))), lane=True)
Answer = tuple[int, list[tuple[bytes, bytes]], object, str | None, dict[str, object]]
# what routing leaves in the scope for the layers above it (the request log names the route from it)
ROUTING_KEYS = ("route", "root_path", "app_root_path", "path_params", "endpoint", "router")


def routing_of(scope: Scope) -> dict[str, object]:
    """What routing left in the scope, in terms two apps with their own route objects can share."""
    seen: dict[str, object] = {}
    for key in ROUTING_KEYS:
        value = scope.get(key)
        if isinstance(value, BaseRoute):
            value = ("mount" if isinstance(value, Mount) else "route", getattr(value, "path", None))
        elif value is not None and not isinstance(value, (str, dict)):
            value = getattr(value, "__name__", type(value).__name__)
        seen[key] = value
    return seen


def answer(app: Starlette, method: str, path: str) -> Answer:
    """The app's answer to one request, called as a server calls it, and the name of the error that rose out of it if
    one did (an error no handler takes is answered 500 by the server-error layer and then rises)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver")], "server": ("testserver", 80), "client": ("127.0.0.1", 5000),
    }  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def call() -> str | None:
        try:
            await app(scope, receive, send)
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return None

    risen = asyncio.run(call())
    start, *bodies = sent
    body = b"".join(message.get("body", b"") for message in bodies)
    headers = sorted(start["headers"])
    content = json.loads(body) if (b"content-type", b"application/json") in headers else body
    return start["status"], headers, content, risen, routing_of(scope)


SEGMENTS = st.sampled_from(
    ["v1", "me", "workspaces", "acc_1", "links", "lnk_2", "analytics", "hooks", "hk_3", "", "broker-error",
     "http-error", "unhandled", "value-error", "lookup-error", "late-error", "refused", "not-http", "me\n", "x y",
     "%2F", "ü"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(method=st.sampled_from(METHODS), segments=st.lists(SEGMENTS, max_size=6), slash=st.booleans())
def test_any_request_is_answered_as_starlette_answers_it(method: str, segments: list[str], slash: bool) -> None:
    path = "/" + "/".join(segments) + ("/" if slash else "")
    expected = answer(STARLETTE, method, path)
    assert answer(OURS, method, path) == expected
    assert answer(LANE, method, path) == expected


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/me"),
        ("HEAD", "/v1/me"),
        ("POST", "/v1/me"),
        ("GET", "/v1/me/"),
        ("GET", "/v1"),
        ("GET", "/v1/workspaces/acc_1/links"),
        ("POST", "/v1/workspaces/acc_1/links"),
        ("PUT", "/v1/workspaces/acc_1/links"),
        ("PATCH", "/v1/workspaces/acc_1/links/lnk_2"),
        ("DELETE", "/v1/workspaces/acc_1/hooks/hk_3"),
        ("GET", "/v1/workspaces/acc_1/links/lnk_2/analytics"),
        ("GET", "/v1/workspaces/acc_1/links/broker-error"),
        ("GET", "/v1/workspaces/acc_1/links/http-error"),
        ("GET", "/v1/workspaces/acc_1/links/value-error"),
        ("GET", "/v1/workspaces/acc_1/links/lookup-error"),
        ("GET", "/v1/workspaces/acc_1/links/unhandled"),
        ("GET", "/v1/workspaces/acc_1/links/late-error"),
        ("GET", "/v1/refused"),
        ("GET", "/v1/not-http"),
        ("GET", "/v1/nothing"),
        ("GET", "/healthz"),
        ("GET", "/v1x/me"),
    ],
)
def test_each_kind_of_answer_is_starlettes(method: str, path: str) -> None:
    expected = answer(STARLETTE, method, path)
    assert answer(OURS, method, path) == expected
    assert answer(LANE, method, path) == expected


def test_the_fast_path_names_the_route_and_its_parameters() -> None:
    status, _, body, _, _ = answer(LANE, "GET", "/v1/workspaces/acc_1/links/lnk_2")
    assert status == 200
    assert body == {
        "route": "GET /workspaces/{account_id}/links/{link_id}",
        "params": {"account_id": "acc_1", "link_id": "lnk_2"},
        "root": "/v1",
    }


def test_the_lane_takes_the_apis_requests_past_the_rest_of_the_stack_and_only_those() -> None:
    mount = PrefixMount("/v1", app=ApiRouter(echo_routes()))
    lane = ApiLane(ExceptionMiddleware(Router([mount, Route("/healthz", health)])), mount=mount)
    passed_on: list[str] = []

    async def rest_of_the_stack(scope: Scope, receive: Receive, send: Send) -> None:
        passed_on.append(scope["path"])
        await PlainTextResponse("the rest")(scope, receive, send)

    lane.app = rest_of_the_stack
    app = Starlette(routes=[])
    app.middleware_stack = lane
    assert answer(app, "GET", "/v1/me")[0] == 200
    assert answer(app, "GET", "/healthz")[2] == b"the rest"
    assert answer(app, "GET", "/v1")[2] == b"the rest"
    assert passed_on == ["/healthz", "/v1"]


def test_the_lane_refuses_a_place_where_it_would_answer_otherwise_than_the_stack() -> None:
    mount = PrefixMount("/v1", app=ApiRouter(echo_routes()))
    with pytest.raises(TypeError, match="first route"):
        ApiLane(ExceptionMiddleware(Router([Route("/healthz", health), mount])), mount=mount)
    with pytest.raises(TypeError, match="innermost"):
        ApiLane(Router([mount]), mount=mount)
