"""The workspace API's OpenAPI 3.1 document, served at /openapi.json, derived from the route table (paths, methods,
scopes, each route's declared operation), the error tree (the error codes) and the schemas below."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import BaseRoute

from token_broker import __version__
from token_broker.api import payloads
from token_broker.api.routes import ROUTES
from token_broker.api.scoped_routes import ApiRoute, QueryInt
from token_broker.errors import api_error_codes
from token_broker.store.hook_models import HOOK_EVENTS

JSON = "application/json"
RATE_HEADERS = {
    name: {"schema": {"type": "integer"}, "description": description}
    for name, description in [
        ("RateLimit-Limit", "requests allowed in the window closest to running out"),
        ("RateLimit-Remaining", "requests left in that window"),
        ("RateLimit-Reset", "seconds until that window has room again"),
    ]
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "enum": api_error_codes()},
            "message": {"type": "string"},
            "reconnect": {"type": "boolean"},
        },
    },
    "LinkList": {
        "type": "object",
        "required": ["data", "has_more"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Link"}},
            "has_more": {"type": "boolean"},
        },
    },
    "LinkCreate": {
        "type": "object",
        "required": ["destination"],
        "additionalProperties": False,
        "properties": {
            "destination": {"type": "string", "description": "an absolute http or https URL"},
            "slug": {"type": "string", "description": "1 to 64 letters, digits, - and _; random when left out"},
            "expires_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "RFC 3339 with a zone, later than now and within ten years; null or left out: never",
            },
        },
    },
    "LinkUpdate": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "destination": {"type": "string"},
            "slug": {"type": "string"},
            "expires_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "a new expiry later than now (reactivates an expired link), or null for none",
            },
        },
    },
    "Analytics": {
        "type": "object",
        "required": ["link_id", "clicks", "days"],
        "properties": {
            "link_id": {"type": "string"},
            "clicks": {"type": "integer"},
            "days": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["date", "clicks"],
                    "properties": {"date": {"type": "string", "format": "date"}, "clicks": {"type": "integer"}},
                },
            },
            "top_referrers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"referrer": {"type": "string"}, "clicks": {"type": "integer"}},
                },
            },
        },
    },
    "Hook": {
        "type": "object",
        "required": ["id", "event", "target_url", "status", "status_reason", "created_at"],
        "properties": {
            "id": {"type": "string", "examples": ["hook_4fQ2k9LmZx0aB7cD"]},
            "event": {"type": "string", "enum": list(HOOK_EVENTS)},
            "target_url": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "disabled"]},
            "status_reason": {
                "type": ["string", "null"],
                "description": "why a hook was disabled: gone, failing, connection_ended, credential_revoked, ...",
            },
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "CreatedHook": {
        "allOf": [
            {"$ref": "#/components/schemas/Hook"},
            {
                "type": "object",
                "required": ["secret"],
                "properties": {
                    "secret": {
                        "type": "string",
                        "description": "the Standard Webhooks signing secret (whsec_...), shown only in this answer",
                    }
                },
            },
        ]
    },
    "HookList": {
        "type": "object",
        "required": ["data", "has_more"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Hook"}},
            "has_more": {"type": "boolean"},
        },
    },
    "HookCreate": {
        "type": "object",
        "required": ["event", "target_url"],
        "additionalProperties": False,
        "properties": {
            "event": {"type": "string", "enum": list(HOOK_EVENTS)},
            "target_url": {"type": "string", "description": "an https URL on a public host; events are POSTed there"},
        },
    },
    "Me": {
        "type": "object",
        "required": ["account_id", "workspace", "credential"],
        "properties": {
            "account_id": {"type": "string"},
            "workspace": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
            "credential": {
                "type": "object",
                "required": ["id", "kind", "platform", "scopes"],
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "kind": {"type": "string", "enum": ["workspace_key", "partner_install_token"]},
                    "platform": {"type": ["string", "null"]},
                    "scopes": {"type": ["array", "null"], "items": {"type": "string"}},
                },
            },
        },
    },
}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
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
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{declared.body}"}}},
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


def openapi_document(server_url: str) -> dict[str, Any]:
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
            "schemas": {**SCHEMAS, **payloads.schemas()},
        },
        "paths": api_paths(ROUTES),
    }
