"""The workspace API against its own OpenAPI document: schemathesis generates requests from /openapi.json and checks
that no input gets a 5xx and that every answer matches the document.

One check is left out: positive_data_acceptance, which expects every schema-valid request to succeed. The server
validates more than JSON Schema can say (a destination must be a public http(s) URL with a host, a slug must not be
reserved or taken, a cursor must name an existing link), so schema-valid input is rightly refused with 422 or 409."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, BaseSchema, Case
from schemathesis.checks import positive_data_acceptance

from tests.live import LiveServer, live_server
from tests.makers import Keys
from tests.support import CHEAP_HASHING, make_team
from token_broker.api.routes import ROUTES
from token_broker.api.scoped_routes import ApiRoute
from token_broker.credentials import SecretHasher
from token_broker.net import ssrf
from token_broker.store import migrate
from token_broker.store.database import Database


class Fuzzing:
    def __init__(self, server: LiveServer, key: str, account_id: str) -> None:
        self.server, self.key, self.account_id = server, key, account_id


@pytest.fixture(scope="module")
def fuzzing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzing]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'store.db'}"
    database = Database(url)
    migrate.upgrade(database)
    hasher = SecretHasher(CHEAP_HASHING)
    team = make_team(database, hasher)
    issued = Keys(database, hasher, team).workspace_key(rate_limits=["1000000/minute"])
    # No delivery worker, and a resolver that knows no name: fuzzed hook targets never lead to any traffic.
    with pytest.MonkeyPatch.context() as patch, live_server(url, webhook_worker=False) as server:
        patch.setattr(ssrf, "resolver", lambda _host, _port: [])
        yield Fuzzing(server, issued.plaintext, team.account_id)
    database.dispose()


@pytest.fixture(scope="module")
def api_schema(fuzzing: Fuzzing) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzing.server.base_url}/openapi.json")


def operations(schema: BaseSchema) -> dict[str, APIOperation]:
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[f"{operation.method.upper()} {operation.path}"] = operation
    return found


# From the route table itself, never a copy: a new route is fuzzed as soon as it is declared.
OPERATIONS = [f"{route.method} {route.public_path}" for route in ROUTES if isinstance(route, ApiRoute)] + [
    "GET /r/{slug}"
]


def test_the_document_lists_every_route(api_schema: BaseSchema) -> None:
    assert sorted(operations(api_schema)) == sorted(OPERATIONS)


@pytest.mark.parametrize("name", OPERATIONS)
def test_no_input_gets_a_server_error_and_answers_match_the_document(
    api_schema: BaseSchema, fuzzing: Fuzzing, name: str
) -> None:
    operation = operations(api_schema)[name]

    @given(case=operation.as_strategy())
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Case) -> None:
        if case.path_parameters and "account_id" in case.path_parameters:
            case.path_parameters["account_id"] = fuzzing.account_id
        case.call_and_validate(
            headers={"Authorization": f"Bearer {fuzzing.key}"}, excluded_checks=[positive_data_acceptance]
        )

    check()
