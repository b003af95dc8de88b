"""A live broker for the connector suites: a fresh SQLite store with a team, served on 127.0.0.1, allowed to deliver
webhooks to 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.connectors.live_support import Broker
from tests.live import live_server
from tests.support import make_team
from token_broker.credentials import SecretHasher
from token_broker.store.database import Database


@pytest.fixture
def broker(sqlite_template: Path, tmp_path: Path, hasher: SecretHasher) -> Iterator[Broker]:
    path = tmp_path / "store.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    database = Database(url)
    team = make_team(database, hasher)
    try:
        with live_server(url, webhook_allow_hosts=("127.0.0.1",)) as server:
            yield Broker(server=server, database=database, team=team)
    finally:
        database.dispose()
