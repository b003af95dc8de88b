"""A link's body is one type: adding a field to it changes the OpenAPI document, and what the API sends is that type."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.live import LiveServer
from tests.makers import Keys
from tests.support import Team
from token_broker.api import payloads
from token_broker.api.openapi import openapi_document


def link_schema() -> dict[str, Any]:
    schema: dict[str, Any] = openapi_document("https://broker.example")["components"]["schemas"]["Link"]
    return schema


def test_adding_a_field_to_a_link_changes_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    before = link_schema()
    assert "favourite" not in before["properties"]

    class Link(payloads.Link, forbid_unknown_fields=True):
        favourite: bool = False

    monkeypatch.setattr(payloads, "Link", Link)
    after = link_schema()
    assert after["properties"]["favourite"] == {"type": "boolean", "default": False}
    assert {name: after["properties"][name] for name in before["properties"]} == before["properties"]


def test_a_link_body_with_an_unknown_field_is_refused_by_its_type() -> None:
    stamp = "2026-01-01T00:00:00Z"
    link = payloads.Link("lnk_x", "nim.link", "s", "https://example.com/", 0, stamp, stamp, "key", None, "active")
    assert msgspec.convert(msgspec.to_builtins(link), payloads.Link) == link
    body = msgspec.to_builtins(link) | {"surprise": 1}
    with pytest.raises(msgspec.ValidationError, match="surprise"):
        msgspec.convert(body, payloads.Link)


def test_the_api_sends_exactly_the_documented_link(live: LiveServer, make: Keys, team: Team) -> None:
    auth = {"Authorization": f"Bearer {make.workspace_key().plaintext}"}
    with live.client() as client:
        created = client.post(
            f"/v1/workspaces/{team.account_id}/links", headers=auth, json={"destination": "https://example.com/typed"}
        )
    assert created.status_code == 201
    decoded = msgspec.json.decode(created.content, type=payloads.Link)
    assert set(created.json()) == set(link_schema()["properties"]) == set(payloads.Link.__struct_fields__)
    assert decoded.destination == "https://example.com/typed" and decoded.status == "active"
