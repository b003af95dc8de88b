"""The route layer's side of the typed bodies (`token_broker.wire`): decode a request body into its Struct, refusing
unknown fields, with every refusal an InvalidInput naming the field; build the answers' Structs from the services'
plain data; encode them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from token_broker import wire
from token_broker.api.scoped_routes import body_bytes
from token_broker.credentials import CredentialKind
from token_broker.errors import InvalidInput
from token_broker.services.link_analytics import AnalyticsReport
from token_broker.services.links import LinkView
from token_broker.services.verification import VerifiedCredential
from token_broker.services.webhook_subscriptions import CreatedHook, HookView
from token_broker.times import rfc3339

B = TypeVar("B", bound=wire.Body)
SHOWN_NAME_LENGTH = 64
_UNKNOWN = re.compile(r"Object contains unknown field `(.*)`", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(.*)`", re.DOTALL)
_AT = re.compile(r"(.*) - at `\$\.([^`\[.]*)[^`]*`$", re.DOTALL)
_EXPECTED = re.compile(r"Expected `(.+)`, got `(.+)`")
_KINDS = {
    "str": "a string",
    "int": "a whole number",
    "bool": "true or false",
    "null": "null",
    "object": "an object",
    "array": "an array",
    "float": "a number",
}


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        if headers is None and self.status_code >= 200 and self.status_code not in (204, 304):
            # what Response.init_headers makes of no headers, without its general case's work
            self.raw_headers = [(b"content-length", b"%d" % len(self.body)), (b"content-type", b"application/json")]
        else:
            super().init_headers(headers)


def listed_fields(body_type: type[wire.Body]) -> str:
    """The names of a body's fields, for a message: "destination, slug and expires_at"."""
    names = body_type.__struct_fields__
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _kind(expected: str) -> str:
    return " or ".join(_KINDS.get(part, part) for part in expected.split(" | "))


def refusal(error: msgspec.ValidationError, body_type: type[wire.Body]) -> InvalidInput:
    """msgspec's account of why a body does not decode, as the API's InvalidInput naming the field."""
    text = str(error)
    takes = listed_fields(body_type)
    if unknown := _UNKNOWN.fullmatch(text):
        name = unknown.group(1)[:SHOWN_NAME_LENGTH]
        return InvalidInput(name, f"Unknown field {name!r}: the body takes only {takes}.")
    if missing := _MISSING.fullmatch(text):
        name = missing.group(1)
        return InvalidInput(name, f"{name} is required: the body takes {takes}.")
    at = _AT.fullmatch(text)
    if at is None:
        return InvalidInput("body", "The body must be a JSON object.")
    detail, name = at.group(1), at.group(2)
    if expected := _EXPECTED.fullmatch(detail):
        return InvalidInput(name, f"{name} must be {_kind(expected.group(1))}, not {_kind(expected.group(2))}.")
    return InvalidInput(name, f"{name} is not valid: {detail}.")


def decode(raw: bytes, body_type: type[B]) -> B:
    """A request body as its Struct: unknown fields, missing ones and wrong JSON types refused (InvalidInput)."""
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as error:
        raise refusal(error, body_type) from None
    except msgspec.DecodeError:
        raise InvalidInput("body", "The body is not valid JSON: send a JSON object.") from None


async def read(request: Request, body_type: type[B]) -> B:
    return decode(await body_bytes(request), body_type)


def given(body: wire.Body) -> dict[str, Any]:
    """The fields a body carries, without those left out."""
    return {name: value for name, value in msgspec.structs.asdict(body).items() if value is not msgspec.UNSET}


# Answers.


def link_list(found: list[LinkView], has_more: bool) -> wire.LinkList:
    return wire.LinkList(data=[wire.link(view) for view in found], has_more=has_more)


def analytics(report: AnalyticsReport) -> wire.Analytics:
    return wire.Analytics(
        link_id=report.link_id,
        clicks=report.clicks,
        days=[wire.DayClicks(date=day.day.isoformat(), clicks=day.clicks) for day in report.days],
        top_referrers=[wire.ReferrerClicks(referrer=top.referrer, clicks=top.clicks) for top in report.top_referrers],
    )


def _hook_fields(view: HookView) -> Mapping[str, Any]:
    return {
        "id": view.id,
        "event": view.event,
        "target_url": view.target_url,
        "status": "disabled" if view.status == "disabled" else "active",
        "status_reason": view.status_reason,
        "created_at": rfc3339(view.created_at) or "",
    }


def hook(view: HookView) -> wire.Hook:
    return wire.Hook(**_hook_fields(view))


def created_hook(created: CreatedHook) -> wire.CreatedHook:
    return wire.CreatedHook(**_hook_fields(created.view), secret=created.secret)


def hook_list(found: list[HookView]) -> wire.HookList:
    return wire.HookList(data=[hook(view) for view in found], has_more=False)


def me(credential: VerifiedCredential) -> wire.Me:
    return wire.Me(
        account_id=credential.account_id,
        workspace=wire.MeWorkspace(name=credential.workspace_name),
        credential=wire.MeCredential(
            id=credential.id,
            name=credential.name,
            kind="workspace_key" if credential.kind is CredentialKind.WORKSPACE_KEY else "partner_install_token",
            platform=credential.platform,
            scopes=None if credential.scopes is None else list(credential.scopes),
        ),
    )
