"""Introspection answered on the event loop, from what was remembered: no worker thread, no transaction, no authlib.

It answers only when both halves are remembered exactly: the client's authentication with these very credentials and
method (oauth/client_cache.py, which a rotation or revocation anywhere clears through the change notes) and the
token's description (oauth/introspection_cache.py, which any change to the token, its connection or its client clears
the same way). Anything else (a missing token, two authentication methods, credentials not remembered, a token not
remembered) goes the full way through authlib, whose answers these copy byte for byte: the owner alone hears that its
token is active, any other client and any token past its exp hear `{"active":false}`, with no-store.

A refresh token is never remembered: its description is read each time.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from token_broker import credentials
from token_broker.errors import MalformedCredential
from token_broker.oauth.introspection_cache import Description, DescriptionCache, encode

# As authlib's endpoint answers (authlib.consts.default_json_headers, rendered by BrokerAuthorizationServer).
ANSWER_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
INACTIVE = encode({"active": False})
INTROSPECTED = "introspected"  # on a request: the description its introspection read, whoever's token it is


def answer(body: bytes) -> Response:
    return Response(body, media_type="application/json", headers=ANSWER_HEADERS)


def cached_answer(descriptions: DescriptionCache, client_id: str, form: Any) -> Response | None:
    """The answer for an authenticated client from a remembered description; None when the token is not remembered."""
    token = form.get("token")
    if not token:
        return None
    found = descriptions.get(descriptions.digest(token))
    if found is None:
        return None
    if found.owner != client_id or found.expires_at <= time.time():
        return answer(INACTIVE)
    return answer(found.body)


def note_described(request: Any, fields: dict[str, Any]) -> None:
    """Called by the introspection endpoint with the active token's description it read."""
    setattr(request, INTROSPECTED, fields)


def remember(descriptions: DescriptionCache, request: Any, since: int) -> None:
    """Keep the access token's description the full way read, if no change to it was heard since generation `since`
    (read before the read's transaction began)."""
    fields: dict[str, Any] | None = getattr(request, INTROSPECTED, None)
    if fields is None or fields.get("token_type") != "Bearer":
        return
    token = request.form["token"]
    try:
        public_id = credentials.parse(token).public_id
    except MalformedCredential:
        return
    description = Description(str(fields["client_id"]), encode(fields), float(fields["exp"]), public_id)
    descriptions.put(descriptions.digest(token), description, since)
