"""The OpenAPI document is the route table's: every workspace API route is an operation with its route's scope, and
no operation lacks a route."""

from __future__ import annotations

from starlette.routing import Mount, Route

from token_broker.api.openapi import openapi_document
from token_broker.api.routes import ROUTES
from token_broker.api.scoped_routes import ApiRoute
from token_broker.app import create_app
from token_broker.config import Settings

METHODS = {"get", "post", "put", "patch", "delete"}


def document_operations() -> dict[tuple[str, str], dict[str, object]]:
    paths = openapi_document("https://broker.example")["paths"]
    return {
        (method.upper(), path): operation
        for path, item in paths.items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_every_route_is_an_operation_with_its_scope_and_nothing_else() -> None:
    operations = document_operations()
    api_routes = [route for route in ROUTES if isinstance(route, ApiRoute)]
    api_operations = {key: value for key, value in operations.items() if key[1].startswith("/v1/")}
    assert set(api_operations) == {(route.method, route.public_path) for route in api_routes}
    for route in api_routes:
        assert api_operations[(route.method, route.public_path)].get("x-scope") == route.scope


def test_operations_outside_the_api_are_routes_of_the_app() -> None:
    app = create_app(Settings(database_url="sqlite://", issuer="https://broker.example"))
    served = {route.path for route in app.routes if isinstance(route, Route) and not isinstance(route, Mount)}
    mounted = {route.path for route in app.routes if isinstance(route, Mount)}
    for _method, path in document_operations():
        assert path in served or any(path.startswith(prefix + "/") for prefix in mounted if prefix)
