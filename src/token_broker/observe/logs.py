"""Structured logs: one JSON object per line, with the request id of the request being served, and no secrets.

Nothing secret is ever passed to a logger (the request log names the route template, never the path or query, and the
credential's public id, never a header). As a second fence, every line is scrubbed of anything shaped like one of our
credentials and of `Bearer`/`Basic` header values before it is written.

`configure(level)` is for processes that serve (`token-broker serve`, the app factory for `uvicorn --workers`): lines
are formatted where they are logged and written in batches by one writer thread, every WRITE_SECONDS (at once for
warnings and errors), so a slow log pipe never stalls the event loop and a busy server does not switch threads per
request. Tests and embedders that only call create_app() keep their own logging.
"""

from __future__ import annotations

import atexit
import json
import logging
import re
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from token_broker.credentials import CREDENTIAL_PATTERN

request_id: ContextVar[str | None] = ContextVar("token_broker_request_id", default=None)

_CREDENTIAL = re.compile(CREDENTIAL_PATTERN)
_HEADER_VALUE = re.compile(r"(?i)\b(bearer|basic)(?:\s+|%20|\+)[A-Za-z0-9._~+/=:%-]{12,}")
# Attributes every LogRecord has; anything else on a record came from `extra=` and becomes a field of the line.
WRITE_SECONDS = 0.2
MAX_WAITING_LINES = 10_000  # past this, lines are written at once
ACCESS_LOGGER = "token_broker.access"
_access_logger = logging.getLogger(ACCESS_LOGGER)  # the same object for the life of the process
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
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        text = _HEADER_VALUE.sub(r"\1 [redacted]", text)
    return text


def dumps(line: dict[str, Any]) -> str:
    """One line of JSON, UTF-8 as it is; anything JSON has no type for as its str()."""
    try:
        return orjson.dumps(line, default=str).decode()
    except (orjson.JSONEncodeError, TypeError):  # e.g. an int beyond 64 bits
        return json.dumps(line, default=str, ensure_ascii=False)


def timestamp(created: float) -> str:
    """RFC 3339 UTC with milliseconds; the part up to the second is formatted once a second."""
    second = int(created)
    cached = _last_second[0]
    if cached[0] != second:  # one tuple, replaced whole: threads never see one second's number with another's text
        cached = _last_second[0] = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{int((created - second) * 1000):03d}Z"


_last_second: list[tuple[int, str]] = [(-1, "")]


class AccessLine:
    """A request log line's parts, taken on the event loop; the writer thread makes the JSON of it. (A plain class
    with slots: a frozen dataclass's constructor costs three object.__setattr__ calls per request.)"""

    __slots__ = ("created", "fields", "request_id")

    def __init__(self, created: float, request_id: str | None, fields: dict[str, Any]) -> None:
        self.created = created
        self.request_id = request_id
        self.fields = fields

    def json(self) -> str:
        line: dict[str, Any] = {"time": timestamp(self.created), "level": "info", "logger": ACCESS_LOGGER,
                                "message": "request"}  # fmt: skip
        if self.request_id is not None:
            line["request_id"] = self.request_id
        line.update(self.fields)
        return scrub(dumps(line))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": timestamp(record.created),
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
        return scrub(dumps(line))


class BatchWriter(logging.Handler):
    """Formats each record at once (request log lines given to `add_access`: in the writer thread); a daemon thread
    writes the lines in batches (at exit, what is left)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._lines: list[str | AccessLine] = []
        self._wake = threading.Event()
        self._guard = threading.Lock()
        # Held from taking a batch until it is written: at exit, write_waiting waits for the batch the writer thread
        # holds, which the interpreter would otherwise drop with the daemon thread (and write the later lines first).
        self._writing = threading.Lock()
        threading.Thread(target=self._write_forever, name="log-writer", daemon=True).start()
        atexit.register(self.write_waiting)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._add(line, urgent=record.levelno >= logging.WARNING)

    def add_access(self, line: AccessLine) -> None:
        self._add(line, urgent=False)

    def _add(self, line: str | AccessLine, urgent: bool) -> None:
        with self._guard:
            self._lines.append(line)
            waiting = len(self._lines)
        if urgent or waiting >= MAX_WAITING_LINES:
            self._wake.set()

    def _write_forever(self) -> None:
        while True:
            self._wake.wait(WRITE_SECONDS)
            self._wake.clear()
            self.write_waiting()

    def write_waiting(self) -> None:
        with self._writing:
            with self._guard:
                waiting, self._lines = self._lines, []
            lines = [line for line in map(self._formatted, waiting) if line is not None]
            if lines:
                try:
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):  # the stream is gone (closed pipe, interpreter exit): nothing to do
                    pass

    @staticmethod
    def _formatted(line: str | AccessLine) -> str | None:
        if isinstance(line, str):
            return line
        try:
            return line.json()
        except Exception:  # an unserialisable field must not stop the writer
            return None


_configured: BatchWriter | None = None


def write_waiting() -> None:
    """Write at once the lines waiting for the writer's next batch, when `configure` installed one. The app does so
    as its lifespan ends: uvicorn, having shut down on a signal, raises it again with its default action, and the
    process ends without running its exit handlers, so lines still waiting then would be lost."""
    if _configured is not None:
        _configured.write_waiting()


def access_writer() -> BatchWriter | None:
    """The writer `configure` installed, when a request log line may go to it directly: the request logger has no
    handlers or filters of its own and propagates to a root with that writer alone. None: log it the usual way."""
    writer = _configured
    if writer is None:
        return None
    access, root = _access_logger, logging.root
    if access.handlers or access.filters or not access.propagate or root.handlers != [writer] or root.filters:
        return None
    return None if writer.filters or writer.level > logging.INFO else writer


def configure(level: str) -> None:
    """JSON lines on stderr at `level` for this process, uvicorn's loggers included (its access log is off)."""
    global _configured
    handler = _configured = BatchWriter(sys.stderr)
    handler.setFormatter(JsonFormatter())
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
