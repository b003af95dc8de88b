"""The workspace API's bodies on the wire, each declared once as a msgspec Struct: what a request may carry (unknown
fields refused) and what an answer holds. The route layer (`api/`) decodes requests into them and encodes answers from
them, the OpenAPI document's schemas are generated from them (`api/openapi.py`), and the outbox's link events carry the
very `Link` the API answers with, which is why this module sits below the services. Why msgspec: docs/payloads.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Protocol

from msgspec import UNSET, Meta, Struct, UnsetType

from token_broker.store.link_models import EVENT_TYPES, MAX_DESTINATION_LENGTH, MAX_SLUG_LENGTH
from token_broker.times import rfc3339

DateTime = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
Count = Annotated[int, Meta(ge=0)]
Event = Annotated[str, Meta(extra_json_schema={"enum": list(EVENT_TYPES)})]
Destination = Annotated[
    str,
    Meta(
        description="an absolute http or https URL",
        extra_json_schema={"maxLength": MAX_DESTINATION_LENGTH},
    ),
]
Slug = Annotated[
    str,
    Meta(
        description=f"1 to {MAX_SLUG_LENGTH} letters, digits, - and _, starting with a letter or digit",
        extra_json_schema={"maxLength": MAX_SLUG_LENGTH},
    ),
]
Expiry = Annotated[str | None, Meta(extra_json_schema={"format": "date-time"})]


class Body(Struct, forbid_unknown_fields=True):
    """A request body: decoding refuses a field the type does not declare (additionalProperties: false)."""


class Answer(Struct, forbid_unknown_fields=True):
    """An answer's body: exactly these fields, so a client decoding it strictly knows them all."""


# Requests.


class LinkCreate(Body):
    destination: Destination
    slug: Annotated[Slug | None, Meta(description="random when left out or null")] = None
    expires_at: Annotated[
        Expiry,
        Meta(description="RFC 3339 with a zone, later than now and within ten years; null or left out: never"),
    ] = None


class LinkUpdate(Body):
    """Send at least one field: a link's destination, slug, expiry or several."""

    destination: Destination | UnsetType = UNSET
    slug: Slug | UnsetType = UNSET
    expires_at: (
        Annotated[
            Expiry,
            Meta(description="a new expiry later than now (reactivates an expired link), or null for none"),
        ]
        | UnsetType
    ) = UNSET


class HookCreate(Body):
    event: Event
    target_url: Annotated[str, Meta(description="an https URL on a public host; events are POSTed there")]


# Answers.


class Link(Answer):
    id: Annotated[str, Meta(examples=["lnk_4fQ2k9LmZx0aB7cD"])]
    domain: str
    slug: str
    destination: Annotated[str, Meta(extra_json_schema={"format": "uri"})]
    clicks: Count
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


class LinkList(Answer):
    data: list[Link]
    has_more: bool


class DayClicks(Answer):
    date: Annotated[str, Meta(extra_json_schema={"format": "date"})]
    clicks: Count


class ReferrerClicks(Answer):
    referrer: str
    clicks: Count


class Analytics(Answer):
    link_id: str
    clicks: Count
    days: list[DayClicks]
    top_referrers: list[ReferrerClicks]


class Hook(Answer):
    id: Annotated[str, Meta(examples=["hook_4fQ2k9LmZx0aB7cD"])]
    event: Event
    target_url: str
    status: Literal["active", "disabled"]
    status_reason: Annotated[
        str | None,
        Meta(description="why a hook was disabled: gone, failing, connection_ended, credential_revoked, ..."),
    ]
    created_at: DateTime


class CreatedHook(Hook):
    secret: Annotated[
        str, Meta(description="the Standard Webhooks signing secret (whsec_...), shown only in this answer")
    ]

    def __repr__(self) -> str:  # never the secret, in a log or a traceback
        return f"CreatedHook(id={self.id!r})"


class HookList(Answer):
    data: list[Hook]
    has_more: bool


class MeWorkspace(Answer):
    name: str


class MeCredential(Answer):
    id: str
    name: str
    kind: Literal["workspace_key", "partner_install_token"]
    platform: str | None
    scopes: list[str] | None


class Me(Answer):
    account_id: str
    workspace: MeWorkspace
    credential: MeCredential


class Error(Answer, omit_defaults=True):
    """Every workspace API refusal; the document lists the codes from the error tree."""

    error: str
    message: str
    reconnect: Annotated[bool, Meta(description="true when only a new connection can help")] = False


# A link's answer from the services' view of it, here because the outbox's link events carry the same body.


class LinkFacts(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def domain(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def destination(self) -> str: ...
    @property
    def clicks(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def created_by(self) -> str: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def status(self) -> str: ...


def link(facts: LinkFacts) -> Link:
    return Link(
        id=facts.id,
        domain=facts.domain,
        slug=facts.slug,
        destination=facts.destination,
        clicks=facts.clicks,
        created_at=rfc3339(facts.created_at) or "",
        updated_at=rfc3339(facts.updated_at) or "",
        created_by=facts.created_by,
        expires_at=rfc3339(facts.expires_at),
        status="expired" if facts.status == "expired" else "active",
    )
