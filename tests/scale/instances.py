"""Two real server processes on one store, and bounded load driven at them from threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.browser_forms import sign_in
from tests.servers import command_env, running_server
from tests.support import PASSWORD


@dataclass
class Instances:
    a: str
    b: str
    logs: tuple[Path, Path]


def two_servers(stack: ExitStack, database_url: str, folder: Path, **env: str) -> Instances:
    environment = command_env(database_url, TOKEN_BROKER_WEBHOOK_WORKER="off", **env)
    logs = (folder / "a.log", folder / "b.log")
    a = stack.enter_context(running_server(environment, logs[0]))
    b = stack.enter_context(running_server(environment, logs[1]))
    return Instances(a, b, logs)


@dataclass(frozen=True)
class Answer:
    started: float  # time.monotonic() when the request was sent
    status: int
    error: str | None
    finished: float  # time.monotonic() when its answer had been read


@dataclass
class Load:
    """Requests at a steady rate from a thread, until stopped or `limit` seconds have passed."""

    base_url: str
    headers: dict[str, str]
    per_second: float
    limit: float = 20.0
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)
        return self.answers

    def _run(self) -> None:
        began = time.monotonic()
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            for index in range(int(self.limit * self.per_second)):
                due = began + index / self.per_second
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                started = time.monotonic()
                response = client.get("/v1/me", headers=self.headers)
                error = response.json().get("error") if response.status_code != 200 else None
                self.answers.append(Answer(started, response.status_code, error, time.monotonic()))


@contextmanager
def admin_client(base_url: str, email: str = "admin@acme.example") -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """A signed-in dashboard session and the CSRF header its unsafe requests need."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        assert sign_in(client, email, PASSWORD).status_code == 303
        yield client, {"X-CSRF-Token": client.get("/api/session").json()["csrf_token"]}


def metric(base_url: str, name: str) -> float | None:
    """One sample of the instance's /metrics, by its full name with labels as printed."""
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None
