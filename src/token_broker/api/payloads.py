"""The workspace API's link bodies, declared once as msgspec Structs: the route layer fills them from the services'
plain data and encodes them, and the OpenAPI document's schemas are generated from them, so a field added here is a
field documented (tests/api/test_payloads.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct
from starlette.responses import Response

from token_broker.services.links import LinkView
from token_broker.times import rfc3339

DateTime = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]


class Link(Struct, forbid_unknown_fields=True):
    id: Annotated[str, Meta(examples=["lnk_4fQ2k9LmZx0aB7cD"])]
    domain: str
    slug: str
    destination: Annotated[str, Meta(extra_json_schema={"format": "uri"})]
    clicks: Annotated[int, Meta(ge=0)]
    created_at: DateTime
    updated_at: DateTime
    created_by: str
    expires_at: Annotated[
        str | None,
        Meta(
            description="when the link stops redirecting (its redirect answers 410 Gone); null: never",
            extra_json_schema={"format": "date-time"},
        ),
    ]
    status: Annotated[
        Literal["active", "expired"],
        Meta(description="expired once expires_at has passed; PATCH a later expires_at (or null) to reactivate"),
    ]


def link(view: LinkView) -> Link:
    return Link(
        id=view.id,
        domain=view.domain,
        slug=view.slug,
        destination=view.destination,
        clicks=view.clicks,
        created_at=rfc3339(view.created_at) or "",
        updated_at=rfc3339(view.updated_at) or "",
        created_by=view.created_by,
        expires_at=rfc3339(view.expires_at),
        status="expired" if view.status == "expired" else "active",
    )


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def schemas() -> dict[str, Any]:
    """The JSON Schemas of the typed bodies, by name, with references into the document's components."""
    _, components = msgspec.json.schema_components([Link], ref_template="#/components/schemas/{name}")
    return components
