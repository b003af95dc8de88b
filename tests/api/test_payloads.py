"""Bodies are types (token_broker.wire): adding a field to a link changes the OpenAPI document, what the API sends is
that type, and the document's request schemas refuse exactly the bodies the server refuses."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import jsonschema
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.live import LiveServer
from tests.makers import Keys
from tests.support import Team
from token_broker import wire
from token_broker.api import payloads
from token_broker.api.openapi import openapi_document
from token_broker.api.routes import ROUTES
from token_broker.api.scoped_routes import ApiRoute
from token_broker.error_responses import api_error
from token_broker.errors import InvalidInput, ReconnectRequired
from token_broker.services.links import LinkView, link_event
from token_broker.store.link_models import EVENT_TYPES, OutboxEvent

DOCUMENT = openapi_document("https://broker.example")
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]


def link_schema(document: dict[str, Any] = DOCUMENT) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"]["Link"]
    return schema


def test_adding_a_field_to_a_link_changes_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    before = link_schema()
    assert "favourite" not in before["properties"]

    class Link(wire.Link, forbid_unknown_fields=True):
        favourite: bool = False

    # The same route table with its link answers declared as the longer Link: only the type changed.
    routes = [route for route in ROUTES if isinstance(route, ApiRoute) and route.operation.answers is wire.Link]
    for route in routes:
        monkeypatch.setattr(route, "operation", dataclasses.replace(route.operation, answers=Link))
    after = link_schema(openapi_document("https://broker.example", list(routes)))
    assert after["properties"]["favourite"] == {"type": "boolean", "default": False}
    assert {name: after["properties"][name] for name in before["properties"]} == before["properties"]


def test_every_declared_body_is_in_the_document() -> None:
    declared = {
        body.__name__
        for route in ROUTES
        if isinstance(route, ApiRoute)
        for body in (route.operation.answers, route.operation.body)
        if body is not None
    }
    assert declared <= set(SCHEMAS) and "Error" in SCHEMAS
    assert "invalid_request" in SCHEMAS["Error"]["properties"]["error"]["enum"]
    for name in ("LinkCreate", "LinkUpdate", "HookCreate"):
        assert SCHEMAS[name]["additionalProperties"] is False


def test_a_link_body_with_an_unknown_field_is_refused_by_its_type() -> None:
    stamp = "2026-01-01T00:00:00Z"
    link = wire.Link("lnk_x", "nim.link", "s", "https://example.com/", 0, stamp, stamp, "key", None, "active")
    assert msgspec.convert(msgspec.to_builtins(link), wire.Link) == link
    body = msgspec.to_builtins(link) | {"surprise": 1}
    with pytest.raises(msgspec.ValidationError, match="surprise"):
        msgspec.convert(body, wire.Link)


def test_the_error_renderer_sends_the_documented_error() -> None:
    for error in (InvalidInput("slug", "slug is bad."), ReconnectRequired("Reconnect.")):
        sent = msgspec.json.decode(api_error(error).body, type=wire.Error)
        assert sent.error in SCHEMAS["Error"]["properties"]["error"]["enum"]
    assert msgspec.json.decode(api_error(ReconnectRequired("Reconnect.")).body, type=wire.Error).reconnect is True


def test_a_created_hook_never_shows_its_secret_in_its_repr() -> None:
    created = wire.CreatedHook("hook_x", "link.created", "https://a.example/", "active", None, "t", "whsec_SECRET")
    assert "whsec_SECRET" not in repr(created) and "whsec_SECRET" not in str(created)


def test_the_api_sends_exactly_the_documented_link(live: LiveServer, make: Keys, team: Team) -> None:
    auth = {"Authorization": f"Bearer {make.workspace_key().plaintext}"}
    with live.client() as client:
        created = client.post(
            f"/v1/workspaces/{team.account_id}/links", headers=auth, json={"destination": "https://example.com/typed"}
        )
    assert created.status_code == 201
    decoded = msgspec.json.decode(created.content, type=wire.Link)
    assert set(created.json()) == set(link_schema()["properties"]) == set(wire.Link.__struct_fields__)
    assert decoded.destination == "https://example.com/typed" and decoded.status == "active"


def test_a_link_event_carries_the_same_json_as_before_the_types() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    view = LinkView("lnk_4fQ2k9LmZx0aB7cD", "nim.link", "Sale", "https://example.com/", 3, moment, moment, "key", None)
    expected = {  # the services' former LinkView.to_json, field by field and in order: connectors read these events
        "id": "lnk_4fQ2k9LmZx0aB7cD",
        "domain": "nim.link",
        "slug": "Sale",
        "destination": "https://example.com/",
        "clicks": 3,
        "created_at": "2026-01-02T03:04:05Z",
        "updated_at": "2026-01-02T03:04:05Z",
        "created_by": "key",
        "expires_at": None,
        "status": "active",
    }
    event = link_event(view)
    assert event == {"link": expected} and list(event["link"]) == list(expected)
    expired = dataclasses.replace(view, expires_at=moment)
    assert link_event(expired)["link"] == expected | {"expires_at": "2026-01-02T03:04:05Z", "status": "expired"}


def test_a_link_event_holds_what_the_api_answered(live: LiveServer, make: Keys, team: Team) -> None:
    auth = {"Authorization": f"Bearer {make.workspace_key().plaintext}"}
    with live.client() as client:
        created = client.post(
            f"/v1/workspaces/{team.account_id}/links", headers=auth, json={"destination": "https://example.com/e"}
        )
    with make.database.read() as session:
        event = session.scalars(select(OutboxEvent).where(OutboxEvent.type == "link.created")).one()
    assert event.payload["data"] == {"link": created.json()}


def test_each_route_decodes_the_body_its_operation_declares(live: LiveServer, make: Keys, team: Team) -> None:
    auth = {"Authorization": f"Bearer {make.workspace_key(rate_limits=['1000/minute']).plaintext}"}
    with live.client() as client:
        link = client.post(
            f"/v1/workspaces/{team.account_id}/links", headers=auth, json={"destination": "https://example.com/"}
        ).json()
        for route in ROUTES:
            if not isinstance(route, ApiRoute) or route.operation.body is None:
                continue
            path = route.public_path.format(account_id=team.account_id, link_id=link["id"])
            answer = client.request(route.method, path, headers=auth, json={"zz": 1})
            assert answer.status_code == 422, (path, answer.text)
            takes = payloads.listed_fields(route.operation.body)
            assert answer.json()["message"] == f"Unknown field 'zz': the body takes only {takes}.", path


# The document and the server agree on which bodies are refused.


def schema_accepts(name: str, body: object) -> bool:
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": {"schemas": SCHEMAS}}
    )
    return validator.is_valid(body)


def server_accepts(body_type: type[wire.Body], body: object) -> bool:
    try:
        payloads.decode(msgspec.json.encode(body), body_type)
    except InvalidInput:
        return False
    return True


FUTURE = "2031-06-01T12:00:00Z"
# (type, body, accepted): values are ones the services accept too, so the only question is the body's shape.
TABLE: list[tuple[type[wire.Body], object, bool]] = [
    (wire.LinkCreate, {"destination": "https://example.com/"}, True),
    (wire.LinkCreate, {"destination": "https://example.com/", "slug": "fine", "expires_at": FUTURE}, True),
    (wire.LinkCreate, {"destination": "https://example.com/", "slug": None, "expires_at": None}, True),
    (wire.LinkCreate, {"destination": "https://example.com/", "colour": "red"}, False),
    (wire.LinkCreate, {}, False),
    (wire.LinkCreate, {"destination": None}, False),
    (wire.LinkCreate, {"destination": 5}, False),
    (wire.LinkCreate, {"destination": "https://example.com/", "expires_at": 1893456000}, False),
    (wire.LinkCreate, ["https://example.com/"], False),
    (wire.LinkCreate, "https://example.com/", False),
    (wire.LinkUpdate, {"expires_at": None}, True),
    (wire.LinkUpdate, {"destination": "https://example.org/"}, True),
    (wire.LinkUpdate, {"slug": "new", "expires_at": FUTURE}, True),
    (wire.LinkUpdate, {"slug": None}, False),
    (wire.LinkUpdate, {"destination": None}, False),
    (wire.LinkUpdate, {"clicks": 5}, False),
    (wire.LinkUpdate, {"slug": "new", "domain": "evil.example"}, False),
    (wire.HookCreate, {"event": "link.created", "target_url": "https://127.0.0.1/hook"}, True),
    (wire.HookCreate, {"event": "link.created"}, False),
    (wire.HookCreate, {"target_url": "https://127.0.0.1/hook"}, False),
    (wire.HookCreate, {"event": "link.created", "target_url": "https://127.0.0.1/hook", "url": "x"}, False),
    (wire.HookCreate, {"event": ["link.created"], "target_url": "https://127.0.0.1/hook"}, False),
    (wire.HookCreate, {"event": "link.created", "target_url": 42}, False),
]


@pytest.mark.parametrize(("body_type", "body", "accepted"), TABLE)
def test_the_schema_and_the_decoder_agree(body_type: type[wire.Body], body: object, accepted: bool) -> None:
    assert schema_accepts(body_type.__name__, body) is accepted
    assert server_accepts(body_type, body) is accepted


def test_an_empty_change_is_refused_by_the_schema_and_the_server(live: LiveServer, make: Keys, team: Team) -> None:
    assert not schema_accepts("LinkUpdate", {})
    auth = {"Authorization": f"Bearer {make.workspace_key(rate_limits=['1000/minute']).plaintext}"}
    base = f"/v1/workspaces/{team.account_id}/links"
    with live.client() as client:
        link = client.post(base, headers=auth, json={"destination": "https://example.com/"}).json()
        empty = client.patch(f"{base}/{link['id']}", headers=auth, json={})
        assert empty.status_code == 422 and empty.json()["error"] == "invalid_request"
        for body_type, body, accepted in TABLE:
            if body_type is wire.HookCreate:
                continue
            if body_type is wire.LinkCreate:
                answer = client.post(base, headers=auth, json=body)
            else:
                answer = client.patch(f"{base}/{link['id']}", headers=auth, json=body)
            assert (answer.status_code < 300) is accepted, (body, answer.text)
            if not accepted:
                assert answer.status_code == 422 and answer.json()["error"] == "invalid_request", answer.text


VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.lists(st.integers(), max_size=2), st.just({}))
LINK_STRINGS = st.sampled_from(["https://example.com/", "fine", FUTURE])
FIELDS = {
    wire.LinkCreate: {"destination": LINK_STRINGS, "slug": LINK_STRINGS, "expires_at": LINK_STRINGS},
    wire.LinkUpdate: {"destination": LINK_STRINGS, "slug": LINK_STRINGS, "expires_at": LINK_STRINGS},
    wire.HookCreate: {"event": st.sampled_from(EVENT_TYPES), "target_url": st.just("https://127.0.0.1/")},
}


@st.composite
def bodies(draw: st.DrawFn) -> tuple[type[wire.Body], dict[str, object]]:
    body_type = draw(st.sampled_from(list(FIELDS)))
    known = FIELDS[body_type]
    names = draw(st.lists(st.sampled_from([*known, "colour", "clicks", "url"]), unique=True, max_size=4))
    return body_type, {name: draw(st.one_of(known[name], VALUES) if name in known else VALUES) for name in names}


@given(bodies())
@settings(max_examples=300, deadline=None)
def test_for_any_body_the_schema_and_the_decoder_agree(case: tuple[type[wire.Body], dict[str, object]]) -> None:
    body_type, body = case
    if body_type is wire.LinkUpdate and not body:
        return  # minProperties: the services refuse an empty change (the test above)
    assert schema_accepts(body_type.__name__, body) == server_accepts(body_type, body), body
