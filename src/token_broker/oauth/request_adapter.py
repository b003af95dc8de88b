"""authlib's request object, built from a Starlette request, after refusing what authlib would trip over.

authlib turns some hostile input into a 500 (a quote, backslash or non-ASCII character in redirect_uri or
response_type ends up in an error description it refuses to build; a non-UTF-8 Basic header fails to decode), so
every parameter is checked here first and refused with a plain 400 invalid_request, never a redirect.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus, urlencode

from authlib.common.security import is_secure_transport
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from authlib.oauth2.rfc6749.requests import OAuth2Payload

# Parameters authlib reads, with the longest value we accept. `state` is echoed back, so it may be any printable text.
PARAMETER_LIMITS = {
    "client_id": 128,
    "redirect_uri": 2048,
    "response_type": 64,
    "scope": 512,
    "code_challenge": 128,
    "code_challenge_method": 16,
    "grant_type": 64,
    "code": 256,
    "code_verifier": 128,
    "refresh_token": 256,
    "token": 2048,
    "token_type_hint": 64,
    "client_secret": 256,
}
STATE_LIMIT = 2048


class BadRequest(ValueError):
    """A parameter authlib must never see; answered 400 invalid_request."""


class Payload(OAuth2Payload):  # type: ignore[misc]
    """Parameters from a query string or a form, keeping repeats so that authlib can refuse repeated parameters."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in pairs:
            self._datalist[name].append(value)
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


@lru_cache(maxsize=16)
def _secure_transport(base: str, insecure_allowed: str | None) -> bool:
    secure: bool = is_secure_transport(base)
    return secure


class BrokerRequest(OAuth2Request):  # type: ignore[misc]
    """authlib's request, built on the issuer (`base`). OAuth2Request.__init__ is not called: its one check, that the
    URI is https (or loopback http), parsed the URI on every request, and depends only on the issuer (and authlib's
    AUTHLIB_INSECURE_TRANSPORT), so it is made once per issuer; the attributes it sets are set here
    (tests/oauth/test_request_adapter.py holds them to authlib's)."""

    def __init__(
        self,
        method: str,
        base: str,
        uri: str,
        headers: Mapping[str, str],
        pairs: list[tuple[str, str]],
        from_form: bool,
    ) -> None:
        if not _secure_transport(base, os.environ.get("AUTHLIB_INSECURE_TRANSPORT")):
            raise InsecureTransportError()
        self.method = method
        self.uri = uri
        self.headers = dict(headers)
        self._body: Any = None
        self.client: Any = None
        self.auth_method: Any = None
        self.user: Any = None
        self.authorization_code: Any = None
        self.refresh_token: Any = None
        self.credential: Any = None
        self._scope: Any = None
        self.payload = Payload(pairs)
        self._form = self.payload.data if from_form else {}
        self._args = {} if from_form else self.payload.data

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


def checked_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The parameters, refusing values authlib cannot handle safely."""
    checked = []
    for name, value in pairs:
        if name == "state":
            if len(value) > STATE_LIMIT or not value.isprintable():
                raise BadRequest("state must be printable text of at most 2048 characters")
        elif name in PARAMETER_LIMITS:
            if len(value) > PARAMETER_LIMITS[name]:
                raise BadRequest(f"{name} is too long")
            if not value.isascii() or not value.isprintable() or '"' in value or "\\" in value:
                raise BadRequest(f"{name} must be printable ASCII without quotes or backslashes")
        checked.append((name, value))
    return checked


def normalized_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers for authlib: a Bearer header (which Zapier adds even to token calls) is dropped, and Basic
    credentials are decoded leniently (padding restored, URL-safe alphabet accepted) and must be UTF-8 id:secret."""
    result = {name: value for name, value in headers.items() if name.lower() != "authorization"}
    authorization = headers.get("authorization")
    if authorization is None:
        return result
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return result
    token = token.strip().replace("-", "+").replace("_", "/")
    token += "=" * (-len(token) % 4)
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadClientCredentials("The Basic client credentials are not base64 of client_id:client_secret") from None
    if ":" not in decoded or not decoded.isprintable():
        raise BadClientCredentials("The Basic client credentials are not base64 of client_id:client_secret")
    result["Authorization"] = "Basic " + base64.b64encode(decoded.encode()).decode()
    return result


class BadClientCredentials(ValueError):
    """A Basic header that is not client credentials at all; answered 401 invalid_client."""


def build_request(
    method: str, base: str, path: str, headers: Mapping[str, str], pairs: list[tuple[str, str]], from_form: bool
) -> BrokerRequest:
    """authlib's request for these checked parameters; its URI is built on the issuer, never on the Host header."""
    query = "" if from_form or not pairs else "?" + urlencode(pairs)
    return BrokerRequest(
        method, base, base + path + query, normalized_headers(headers), checked_pairs(pairs), from_form
    )


def urlencoded_pairs(body: bytes) -> list[tuple[str, str]]:
    """An application/x-www-form-urlencoded body's fields, as Starlette's form parser (python-multipart's
    QuerystringParser) reads them, without its per-byte callbacks and form object: fields split on `&`, empty ones
    skipped, the name up to the first `=` (none: an empty value), each decoded as Latin-1 and then unquote_plus.
    tests/oauth/test_request_adapter.py holds the two to the same answers."""
    pairs = []
    for field in body.split(b"&"):
        if field:
            name, _, value = field.partition(b"=")
            pairs.append((unquote_plus(name.decode("latin-1")), unquote_plus(value.decode("latin-1"))))
    return pairs
