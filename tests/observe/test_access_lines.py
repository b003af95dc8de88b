"""A request log line given straight to the writer (as `serve` logs) is the line the logging path would write."""

from __future__ import annotations

import io
import json
import logging

from token_broker.credentials import CredentialKind, generate
from token_broker.observe.logs import ACCESS_LOGGER, AccessLine, BatchWriter, JsonFormatter, request_id


def test_the_direct_line_equals_the_formatted_record_and_is_scrubbed() -> None:
    fields = {"method": "GET", "route": "/v1/me", "status": 200, "error": None, "duration_ms": 0.4,
              "client": "127.0.0.1", "credential_id": generate(CredentialKind.WORKSPACE_KEY).plaintext}  # fmt: skip
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, "request", (), None)
    record.__dict__.update(fields)
    token = request_id.set("rid-1")
    try:
        formatted = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    direct = json.loads(AccessLine(record.created, "rid-1", fields).json())
    assert direct == formatted
    assert direct["credential_id"] == "[redacted]"  # the second fence holds on this path too


def test_the_writer_writes_direct_lines_with_the_others() -> None:
    stream = io.StringIO()
    writer = BatchWriter(stream)
    writer.setFormatter(JsonFormatter())
    writer.add_access(AccessLine(0.5, None, {"status": 204}))
    writer.emit(logging.LogRecord("token_broker", logging.WARNING, __file__, 1, "careful", (), None))
    writer.write_waiting()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["request", "careful"]
    assert lines[0]["time"] == "1970-01-01T00:00:00.500Z" and lines[0]["status"] == 204
    assert "request_id" not in lines[0]
