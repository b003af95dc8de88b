"""A live broker that trusts one locally served key set, and the key that signs its reports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live import LiveServer, live_server
from tests.scanning.keysets import KeySetServer, SigningKey, key_set_server
from token_broker.store.database import Database


@pytest.fixture
def signing_key() -> SigningKey:
    return SigningKey()


@pytest.fixture
def key_set(signing_key: SigningKey) -> Iterator[KeySetServer]:
    with key_set_server(signing_key) as served:
        yield served


@pytest.fixture
def live(database_url: str, database: Database, key_set: KeySetServer) -> Iterator[LiveServer]:
    with live_server(database_url, secret_scanning_key_urls=(key_set.url,)) as server:
        yield server
