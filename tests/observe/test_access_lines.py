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


def test_a_final_write_waits_for_the_batch_being_written() -> None:
    """At exit, write_waiting must not return while another thread still holds a batch it took: the interpreter ends
    that (daemon) thread, and its lines would be lost, as a busy `serve` once lost its last requests' lines."""
    import threading

    class SlowStream(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.writing = threading.Event()
            self.release = threading.Event()

        def write(self, text: str) -> int:
            if "first" in text:
                self.writing.set()
                assert self.release.wait(30)
            return super().write(text)

    stream = SlowStream()
    writer = BatchWriter(stream)
    writer.setFormatter(JsonFormatter())
    writer.add_access(AccessLine(0.5, None, {"status": 200, "note": "first"}))
    in_flight = threading.Thread(target=writer.write_waiting)
    in_flight.start()
    assert stream.writing.wait(30)
    writer.add_access(AccessLine(0.6, None, {"status": 200, "note": "second"}))
    final = threading.Thread(target=writer.write_waiting)  # what atexit runs
    final.start()
    final.join(0.5)
    assert final.is_alive()  # it waits for the batch in flight instead of returning at once
    stream.release.set()
    in_flight.join(30)
    final.join(30)
    assert [json.loads(line)["note"] for line in stream.getvalue().splitlines()] == ["first", "second"]
