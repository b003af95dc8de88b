"""authlib's request object as the token routes build it (oauth/request_adapter.py), which sets what authlib's own
constructor sets but checks the issuer's transport once per issuer instead of parsing the URI on every request."""

from __future__ import annotations

import pytest
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError

from token_broker.oauth.request_adapter import build_request

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
