"""The workspace API's OpenAPI 3.1 document, served at /openapi.json, derived from the route table (paths, methods,
scopes, each route's declared operation and the Structs (token_broker.wire) of its bodies) and the error tree (the
error codes)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from msgspec import Struct
from starlette.routing import BaseRoute

from token_broker import __version__, wire
from token_broker.api.routes import ROUTES
from token_broker.api.scoped_routes import ApiRoute, QueryInt
from token_broker.errors import api_error_codes

JSON = "application/json"
REF = "#/components/schemas/{name}"
RATE_HEADERS = {
    name: {"schema": {"type": "integer"}, "description": description}
    for name, description in [
        ("RateLimit-Limit", "requests allowed in the window closest to running out"),
        ("RateLimit-Remaining", "requests left in that window"),
        ("RateLimit-Reset", "seconds until that window has room again"),
    ]
}


# What JSON Schema says that a Struct cannot: the error codes come from the error tree, and a change must change
# something (the server refuses an empty PATCH).
def _additions() -> dict[str, dict[str, Any]]:
    return {"Error": {"properties": {"error": {"enum": api_error_codes()}}}, "LinkUpdate": {"minProperties": 1}}


def _merge(schema: dict[str, Any], addition: dict[str, Any]) -> None:
    for key, value in addition.items():
        if isinstance(value, dict) and isinstance(schema.get(key), dict):
            _merge(schema[key], value)
        else:
            schema[key] = value


def schemas(routes: list[BaseRoute]) -> dict[str, Any]:
    """The JSON Schemas of every body the routes declare (and the Error body), generated from their Structs."""
    types: list[type[Struct]] = [wire.Error]
    for route in routes:
        if isinstance(route, ApiRoute):
            types += [body for body in (route.operation.answers, route.operation.body) if body is not None]
    _, components = msgspec.json.schema_components(dict.fromkeys(types), ref_template=REF)
    for schema in components.values():
        if schema.get("required") == []:
            del schema["required"]
    for name, addition in _additions().items():
        if name in components:
            _merge(components[name], addition)
    return components


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": {"$ref": REF.format(name="Error")}}},
    }
    if headers:
        response["headers"] = headers
    return response


PATH_PARAMETERS = {
    "account_id": "the workspace, which must be the credential's own",
    "link_id": "a link id such as lnk_...",
    "hook_id": "a hook id such as hook_...",
    "slug": "the short link's slug, in any case",
}
# The public redirect is served by the app beside the API (no credential); its answers are plain text.
REDIRECT = (
    "/r/{slug}",
    {
        "summary": "The public redirect (no credential)",
        "security": [],
        "responses": {
            "302": {"description": "to the destination; the click is counted"},
            "404": {"description": "no such short link (plain text)"},
            "410": {"description": "the link has expired (plain text); no click is counted"},
        },
    },
)


def _operation(route: ApiRoute) -> dict[str, Any]:
    declared = route.operation
    www = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    ok: dict[str, Any] = {"description": declared.description, "headers": RATE_HEADERS}
    if declared.answers is not None:
        ok["content"] = {JSON: {"schema": {"$ref": f"#/components/schemas/{declared.answers}"}}}
    responses = {
        str(declared.status): ok,
        "401": _error("no credential, or not a valid one", www),
        "403": _error("another workspace, a missing scope, or an address outside the allow-list"),
        "404": _error("no such object in this workspace"),
        "405": _error("this path does not take that method"),
        "422": _error("a parameter or the body does not validate; the message names the field"),
        "429": _error("rate limited", {"Retry-After": {"schema": {"type": "integer"}}, **RATE_HEADERS}),
        "503": _error("the store is unavailable for a moment", {"Retry-After": {"schema": {"type": "integer"}}}),
        **{str(status): _error(description) for status, description in declared.refusals.items()},
    }
    operation: dict[str, Any] = {
        "summary": declared.summary,
        "responses": responses,
        "parameters": [_query(parameter) for parameter in declared.query],
    }
    if route.scope:
        operation["description"] = declared.details or f"Needs the `{route.scope}` scope."
        operation["x-scope"] = route.scope
    if declared.body:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": {"$ref": REF.format(name=declared.body.__name__)}}},
        }
        operation["responses"]["413"] = _error("the body is larger than 64 KiB")
    return operation


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": PATH_PARAMETERS[name],
        }
        for name in re.findall(r"{(\w+)}", path)
    ]


def _query(parameter: QueryInt | str) -> dict[str, Any]:
    if isinstance(parameter, str):
        return {"name": parameter, "in": "query", "schema": {"type": "string"}}
    schema = {"type": "integer", "minimum": parameter.minimum, "maximum": parameter.maximum}
    return {"name": parameter.name, "in": "query", "schema": schema}


def api_paths(routes: list[BaseRoute]) -> dict[str, Any]:
    """The document's paths, from the route table: one operation per ApiRoute, grouped by path, then the redirect."""
    paths: dict[str, Any] = {}
    for route in routes:
        if isinstance(route, ApiRoute):
            item = paths.setdefault(route.public_path, {})
            if "{" in route.public_path:
                item["parameters"] = _path_parameters(route.public_path)
            item[route.method.lower()] = _operation(route)
    path, redirect = REDIRECT
    paths[path] = {"parameters": _path_parameters(path), "get": redirect}
    return paths


def openapi_document(server_url: str, routes: list[BaseRoute] = ROUTES) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "token-broker workspace API", "version": __version__},
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer nim_..."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Nim-Api-Key"},
            },
            "schemas": schemas(routes),
        },
        "paths": api_paths(routes),
    }
