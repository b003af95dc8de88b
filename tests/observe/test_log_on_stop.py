"""A server stopped with a signal has written the log line of every request it answered.

uvicorn, once it has shut down gracefully on SIGTERM, raises the signal again with its default action, so the process
ends without running its exit handlers: lines still waiting for the log writer's next batch (every 0.2 s) were lost
when the writer thread had not run since the last requests (seen once in CI, on a busy machine: 8 of 20 request
lines). The app writes what waits as its lifespan ends, after the last request was answered and logged.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import pytest

from tests.live import live_server
from token_broker.observe import logs, request_log

REQUESTS = 20


def test_the_lifespans_end_writes_every_request_line_still_waiting(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "WRITE_SECONDS", 3600.0)  # the writer thread's batches never come during this test
    stream = io.StringIO()
    writer = logs.BatchWriter(stream)
    monkeypatch.setattr(logs, "_configured", writer)
    # as `serve` logs request lines (straight to the writer), without taking over this process's root logger
    monkeypatch.setattr(request_log, "access_writer", lambda: writer)
    monkeypatch.setattr(request_log.log, "level", logging.INFO)
    path = tmp_path / "store.db"
    shutil.copyfile(sqlite_template, path)
    with live_server(f"sqlite:///{path}") as server, server.client() as client:
        answered = [client.get("/v1/me").status_code for _ in range(REQUESTS)]  # refused, and logged as such
        assert stream.getvalue() == ""  # all still waiting for a batch
    assert answered == [401] * REQUESTS
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["route"] for line in lines if line["logger"] == logs.ACCESS_LOGGER] == ["/v1/me"] * REQUESTS
