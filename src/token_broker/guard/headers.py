"""Finding the presented credential in a request's headers: `Authorization: Bearer` or `X-Nim-Api-Key`."""

from __future__ import annotations

from collections.abc import Iterable

from token_broker.credentials import MALFORMED_MESSAGE
from token_broker.errors import MalformedCredential, MissingCredential

MISSING_MESSAGE = (
    "No API key was sent: put it in the Authorization header as `Bearer <key>`, or in the X-Nim-Api-Key header."
)
TWO_KEYS_MESSAGE = "Two different credentials were sent: send the key in one header only."
REPEATED_MESSAGE = "The credential header was sent more than once: send it once."


def presented_credential(raw_headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The one credential the request presents (ASGI raw headers); MissingCredential or MalformedCredential if not."""
    authorization: list[bytes] = []
    api_key: list[bytes] = []
    for name, value in raw_headers:
        if name == b"authorization":
            authorization.append(value)
        elif name == b"x-nim-api-key":
            api_key.append(value)
    if not authorization and not api_key:
        raise MissingCredential(MISSING_MESSAGE)
    if len(authorization) > 1 or len(api_key) > 1:
        raise MalformedCredential(REPEATED_MESSAGE)
    candidates = set()
    if api_key:
        candidates.add(api_key[0].decode("latin-1").strip())
    if authorization:
        scheme, _, token = authorization[0].decode("latin-1").strip().partition(" ")
        if scheme.lower() == "bearer":
            candidates.add(token.strip())
        elif not api_key:
            raise MalformedCredential(MALFORMED_MESSAGE)
    if len(candidates) > 1:
        raise MalformedCredential(TWO_KEYS_MESSAGE)
    return candidates.pop()
