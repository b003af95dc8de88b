"""The trusted reporters' key sets, fetched from real local servers through an httpx.AsyncClient: cached, refreshed for
an unknown identifier at most once a minute, kept when a fetch fails; and several reporters at once."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest

from tests.live import LiveServer, live_server
from tests.makers import Keys
from tests.scanning.keysets import KeySetServer, SigningKey, body_of, key_set_server, match, send
from token_broker.errors import ReporterKeysUnavailable, UnknownReporterKey
from token_broker.scanning.reporters import ReporterKeys
from token_broker.scanning.signatures import parse_key_set, verifies


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[KeySetServer, SigningKey]]:
    key = SigningKey()
    with key_set_server(key) as server:
        yield server, key


def test_keys_are_cached_and_refreshed_for_a_new_identifier_at_most_once_a_minute(
    served: tuple[KeySetServer, SigningKey],
) -> None:
    server, key = served
    clock = Clock()

    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            ring = ReporterKeys([server.url], client, clock=clock)
            [found] = await ring.keys_for(key.identifier)
            assert found.reporter == server.url and verifies(found.key, b"x", _der(key, b"x"))
            await ring.keys_for(key.identifier)
            assert server.fetches == 1  # cached
            rotated = SigningKey()
            server.keys.append(rotated)
            clock.now += 10
            with pytest.raises(UnknownReporterKey):  # fetched less than a minute ago: not fetched again
                await ring.keys_for(rotated.identifier)
            assert server.fetches == 1
            clock.now += 60
            assert len(await ring.keys_for(rotated.identifier)) == 1  # a new identifier: fetched again
            assert server.fetches == 2
            for _ in range(20):
                with pytest.raises(UnknownReporterKey):
                    await ring.keys_for(SigningKey().identifier)
            assert server.fetches == 2
            clock.now += 3600  # an hour old: fetched again even for a known identifier
            await ring.keys_for(key.identifier)
            assert server.fetches == 3

    anyio.run(scenario)


def test_a_failed_fetch_keeps_the_last_good_keys(served: tuple[KeySetServer, SigningKey]) -> None:
    server, key = served
    clock = Clock()

    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            ring = ReporterKeys([server.url], client, clock=clock)
            await ring.keys_for(key.identifier)
            server.failing = True
            clock.now += 4000
            assert len(await ring.keys_for(key.identifier)) == 1
            assert server.fetches == 2

    anyio.run(scenario)


def test_no_key_set_at_all_is_unavailable_not_unknown(served: tuple[KeySetServer, SigningKey]) -> None:
    server, key = served
    server.failing = True

    async def scenario() -> None:
        async with httpx.AsyncClient() as client:
            ring = ReporterKeys([server.url], client)
            with pytest.raises(ReporterKeysUnavailable):
                await ring.keys_for(key.identifier)

    anyio.run(scenario)


def test_odd_entries_are_skipped_and_the_rest_kept() -> None:
    good = SigningKey()
    document = {"public_keys": [
        {"key_identifier": "rsa", "key": "-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----\n"},
        {"key_identifier": 5, "key": good.entry()["key"]},
        "not an object",
        good.entry(),
    ]}  # fmt: skip
    import json

    assert list(parse_key_set(json.dumps(document).encode())) == [good.identifier]


def test_an_internal_scanner_reports_beside_github(database_url: str, make: Keys) -> None:
    github, internal = SigningKey(), SigningKey()
    with key_set_server(github) as github_set, key_set_server(internal) as internal_set:
        urls = (github_set.url, internal_set.url)
        server: LiveServer
        with live_server(database_url, secret_scanning_key_urls=urls) as server:
            key = make.workspace_key(name="Found internally")
            assert key.plaintext is not None
            answer = send(server.base_url, internal, body_of(match(key.plaintext, source="internal-scanner")))
            assert answer.status_code == 200 and answer.json()[0]["label"] == "true_positive"
            auth = {"Authorization": f"Bearer {key.plaintext}"}
            assert httpx.get(f"{server.base_url}/v1/me", headers=auth).status_code == 401


def _der(key: SigningKey, body: bytes) -> bytes:
    import base64

    return base64.b64decode(key.sign(body))


def test_reports_wait_while_no_key_set_can_be_fetched(database_url: str, make: Keys) -> None:
    key = SigningKey()
    with key_set_server(key) as served, live_server(database_url, secret_scanning_key_urls=(served.url,)) as server:
        served.failing = True
        issued = make.workspace_key(name="Waiting")
        assert issued.plaintext is not None
        answer = send(server.base_url, key, body_of(match(issued.plaintext)))
        assert answer.status_code == 503 and answer.json()["error"] == "service_unavailable"
        assert answer.headers["retry-after"] == "60"
        auth = {"Authorization": f"Bearer {issued.plaintext}"}
        assert httpx.get(f"{server.base_url}/v1/me", headers=auth).status_code == 200
