"""authlib's request object as the token routes build it (oauth/request_adapter.py), which sets what authlib's own
constructor sets but checks the issuer's transport once per issuer instead of parsing the URI on every request."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator

import pytest
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError
from starlette.datastructures import Headers
from starlette.formparsers import FormParser

from token_broker.oauth.request_adapter import build_request, urlencoded_pairs

FORM = {"content-type": "application/x-www-form-urlencoded"}
PAIRS = [("grant_type", "refresh_token"), ("refresh_token", "x")]


def test_the_request_has_every_attribute_authlibs_constructor_sets() -> None:
    ours = build_request("POST", "https://broker.example", "/oauth/token", FORM, PAIRS, True)
    theirs = OAuth2Request("POST", "https://broker.example/oauth/token", headers=dict(FORM))
    assert set(vars(theirs)) <= set(vars(ours))
    for name in set(vars(theirs)) - {"payload", "headers"}:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.uri == theirs.uri and ours.method == "POST" and ours.form["grant_type"] == "refresh_token"


@pytest.mark.parametrize(
    "issuer", ["https://broker.example", "http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"]
)
def test_https_and_loopback_issuers_are_accepted(issuer: str) -> None:
    for _ in range(2):  # the second from the per-issuer check
        assert build_request("POST", issuer, "/oauth/token", FORM, PAIRS, True).uri == issuer + "/oauth/token"


@pytest.mark.parametrize("issuer", ["http://broker.example", "ftp://broker.example", "http://"])
def test_an_insecure_issuer_is_refused_every_time(issuer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)
    for _ in range(2):
        with pytest.raises(InsecureTransportError):
            build_request("POST", issuer, "/oauth/token", FORM, PAIRS, True)
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # authlib's switch, read on every request as authlib does
    assert build_request("POST", issuer, "/oauth/token", FORM, PAIRS, True).method == "POST"


def test_form_bodies_read_as_starlettes_form_parser_reads_them() -> None:
    """The token routes read their urlencoded body with urlencoded_pairs; Starlette's parser is the reference, on
    bodies built from the characters that matter (separators, escapes good and broken, UTF-8 and Latin-1 bytes)."""
    rng = random.Random(15)
    pieces = [b"a", b"b", b"=", b"&", b"&&", b"+", b"%", b"%2", b"%20", b"%3D", b"%26", b"%C3%A9", b"%FF", b"\xe9",
              b"\xc3\xa9", b";", b" ", b"grant_type", b"refresh_token", b"nim_prt_x"]  # fmt: skip
    bodies = [b"", b"&", b"=", b"==", b"a", b"a=", b"=a", b"a=b=c", b"&a=1&&b=2&", b"a=1;b=2"]
    bodies += [b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12))) for _ in range(1500)]

    async def starlette_pairs(body: bytes) -> list[tuple[str, str]]:
        async def stream() -> AsyncGenerator[bytes, None]:
            cut = len(body) // 2  # in two chunks, as a body may arrive
            yield body[:cut]
            yield body[cut:]

        form = await FormParser(Headers({"content-type": FORM["content-type"]}), stream(), max_fields=10_000).parse()
        return [(name, str(value)) for name, value in form.multi_items()]

    async def compare() -> None:
        for body in bodies:
            assert urlencoded_pairs(body) == await starlette_pairs(body), body

    asyncio.run(compare())
