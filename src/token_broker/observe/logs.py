"""Structured logs: one JSON object per line, with the request id of the request being served, and no secrets.

Nothing secret is ever passed to a logger (the request log names the route template, never the path or query, and the
credential's public id, never a header). As a second fence, every line is scrubbed of anything shaped like one of our
credentials and of `Bearer`/`Basic` header values before it is written.

`configure(level)` is for processes that serve (`token-broker serve`, the app factory for `uvicorn --workers`):
records go through a queue to one writer thread, so a slow log pipe never stalls the event loop. Tests and embedders
that only call create_app() keep their own logging.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import Any

from token_broker.credentials import CREDENTIAL_PATTERN

request_id: ContextVar[str | None] = ContextVar("token_broker_request_id", default=None)

_CREDENTIAL = re.compile(CREDENTIAL_PATTERN)
_HEADER_VALUE = re.compile(r"(?i)\b(bearer|basic)(?:\s+|%20|\+)[A-Za-z0-9._~+/=:%-]{12,}")
# Attributes every LogRecord has; anything else on a record came from `extra=` and becomes a field of the line.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of its message with terminal colours
}


def scrub(text: str) -> str:
    """Text with credential-shaped strings and Authorization header values replaced by [redacted]."""
    if "nim_" in text:
        text = _CREDENTIAL.sub("[redacted]", text)
    return _HEADER_VALUE.sub(r"\1 [redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            line["request_id"] = current
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(line, default=str, ensure_ascii=False))


def configure(level: str) -> None:
    """JSON lines on stderr at `level` for this process, uvicorn's loggers included (its access log is off)."""
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(logging.Formatter("%(message)s"))
    listener = QueueListener(records, writer)
    listener.start()
    atexit.register(listener.stop)
    handler = QueueHandler(records)
    handler.setFormatter(JsonFormatter())  # formatted in the logging thread, so the request id is still known
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
