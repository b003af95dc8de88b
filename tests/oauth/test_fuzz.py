"""No input to the authorization server gets a 5xx: Hypothesis throws forms, query strings and Authorization headers
of every shape at /oauth/token, /oauth/revoke, /oauth/introspect and /oauth/authorize."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.browser_forms import sign_in
from tests.connect import Platform, register
from tests.live import LiveServer, live_server, raw_request
from tests.support import CHEAP_HASHING, PASSWORD, make_team
from token_broker.credentials import SecretHasher
from token_broker.store import migrate
from token_broker.store.database import Database

NAMES = [
    *("grant_type", "code", "redirect_uri", "client_id", "client_secret", "refresh_token", "code_verifier", "scope"),
    *("token", "token_type_hint", "response_type", "state", "code_challenge", "code_challenge_method"),
]
VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "authorization_code",
            "refresh_token",
            "code",
            "S256",
            "plain",
            "links:read",
            "",
            '"',
            "\\",
            "nim_prt_AAAAAAAAAAAA_" + "B" * 38,
            "https://evil.example/",
            "%00",
            "é",
            "\x00",
        ]
    ),
)
FIELDS = st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=8)
AUTHORIZATION = st.one_of(
    st.none(),
    st.binary(max_size=60).map(lambda raw: b"Basic " + base64.b64encode(raw)),
    st.binary(max_size=60).map(lambda raw: b"Basic " + raw),
    st.text(max_size=60).map(lambda text: ("Bearer " + text).encode("utf-8", "surrogatepass")),
)


class Fuzzing:
    def __init__(self, server: LiveServer, platform: Platform) -> None:
        self.server, self.platform = server, platform


@pytest.fixture(scope="module")
def fuzzing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzing]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('oauth-fuzz')) / 'store.db'}"
    database = Database(url)
    migrate.upgrade(database)
    make_team(database, SecretHasher(CHEAP_HASHING))
    platform = register(database, "zapier")
    with live_server(url, token_rate_limit="1000000/minute", client_auth_failure_limit="1000000/minute") as server:
        yield Fuzzing(server, platform)
    database.dispose()


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_form_endpoints_never_fail(fuzzing: Fuzzing, path: str) -> None:
    @FUZZ
    @given(fields=FIELDS, authorization=AUTHORIZATION, real_client=st.booleans())
    def check(fields: list[tuple[str, str]], authorization: bytes | None, real_client: bool) -> None:
        if real_client:
            fields = [*fields, ("client_id", fuzzing.platform.client_id),
                      ("client_secret", fuzzing.platform.client_secret)]  # fmt: skip
        body = str(httpx.QueryParams(fields)).encode()
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/x-www-form-urlencoded")]
        if authorization is not None and not set(authorization) & set(b"\r\n\x00"):
            headers.append((b"authorization", authorization.strip()))  # sent as raw bytes, as a hostile client would
        response = raw_request(fuzzing.server.base_url, "POST", path, headers, body)
        assert response.status < 500, (fields, authorization, response.body)
        # header bytes that are not HTTP at all are refused by uvicorn's parser (400, text/plain) before the app
        if response.headers["content-type"] != "text/plain; charset=utf-8":
            assert isinstance(response.json(), dict)

    check()


def test_authorize_never_fails(fuzzing: Fuzzing) -> None:
    with httpx.Client(base_url=fuzzing.server.base_url, timeout=30) as browser:
        sign_in(browser, "admin@acme.example", PASSWORD)

        @FUZZ
        @given(fields=FIELDS, known_client=st.booleans(), method=st.sampled_from(["GET", "POST"]))
        def check(fields: list[tuple[str, str]], known_client: bool, method: str) -> None:
            if known_client:
                fields = [("client_id", fuzzing.platform.client_id), ("redirect_uri", fuzzing.platform.redirect_uri),
                          *fields]  # fmt: skip
            if method == "GET":
                response = browser.get("/oauth/authorize", params=fields)
            else:
                csrf = browser.get("/api/session").json()["csrf_token"]
                body = str(httpx.QueryParams([*fields, ("csrf_token", csrf)]))
                form = {"content-type": "application/x-www-form-urlencoded"}
                response = browser.post("/oauth/authorize", content=body, headers=form)
            assert response.status_code < 500, (fields, response.text[:500])

        check()
