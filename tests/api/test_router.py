"""The API's own mount and router answer exactly as Starlette's Mount and Router would, for any method and path.

Two apps with the workspace API's route table (method and path of every route, each with an endpoint that echoes what
routing gave it and fails on demand) are asked the same requests: one mounted with Starlette's Mount and Router, one
with `PrefixMount` and `ApiRouter`, each before a catch-all mount as the dashboard's. Status, headers and body must be
the same, including unknown paths, other methods, trailing slashes, errors the app's handlers render and errors none
handles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Message

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
    route = request.scope["route"]
    return JSONResponse(
        {"route": f"{request.method} {route.path}", "params": params, "root": request.scope["root_path"]}
    )


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


def app_with(mount: BaseRoute) -> Starlette:
    return Starlette(
        routes=[mount, Route("/healthz", health), Mount("", app=Router([Route("/{rest:path}", dashboard)]))],
        exception_handlers={
            BrokerError: on_broker_error,
            HTTPException: on_http_error,
            ValueError: on_anything,
            LookupError: on_lookup,
        },
    )


STARLETTE = app_with(Mount("/v1", app=Router(list(echo_routes()))))
OURS = app_with(PrefixMount("/v1", app=ApiRouter(echo_routes())))


def answer(app: Starlette, method: str, path: str) -> tuple[int, list[tuple[bytes, bytes]], object]:
    """The app's answer to one request, called as a server calls it (an error no handler takes is answered 500 by
    the server-error layer and then rises; it is swallowed here, on both apps alike)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver")], "server": ("testserver", 80), "client": ("127.0.0.1", 5000),
    }  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def call() -> None:
        with contextlib.suppress(Unhandled):
            await app(scope, receive, send)

    asyncio.run(call())
    start, *bodies = sent
    body = b"".join(message.get("body", b"") for message in bodies)
    headers = sorted(start["headers"])
    return start["status"], headers, json.loads(body) if (b"content-type", b"application/json") in headers else body


SEGMENTS = st.sampled_from(
    ["v1", "me", "workspaces", "acc_1", "links", "lnk_2", "analytics", "hooks", "hk_3", "", "broker-error",
     "http-error", "unhandled", "value-error", "lookup-error", "me\n", "x y", "%2F", "ü"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(method=st.sampled_from(METHODS), segments=st.lists(SEGMENTS, max_size=6), slash=st.booleans())
def test_any_request_is_answered_as_starlette_answers_it(method: str, segments: list[str], slash: bool) -> None:
    path = "/" + "/".join(segments) + ("/" if slash else "")
    assert answer(OURS, method, path) == answer(STARLETTE, method, path)


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
        ("GET", "/v1/nothing"),
    ],
)
def test_each_kind_of_answer_is_starlettes(method: str, path: str) -> None:
    assert answer(OURS, method, path) == answer(STARLETTE, method, path)


def test_the_fast_path_names_the_route_and_its_parameters() -> None:
    status, _, body = answer(OURS, "GET", "/v1/workspaces/acc_1/links/lnk_2")
    assert status == 200
    assert body == {
        "route": "GET /workspaces/{account_id}/links/{link_id}",
        "params": {"account_id": "acc_1", "link_id": "lnk_2"},
        "root": "/v1",
    }
