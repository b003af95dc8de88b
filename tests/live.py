"""A real uvicorn server on 127.0.0.1, in a thread of the test process, serving create_app() for one store."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette

from tests.servers import free_port
from tests.support import CHEAP_HASHING
from token_broker.app import create_app
from token_broker.app_state import Resources
from token_broker.config import Settings

STOP_POLL_SECONDS = 0.01
GRACE_SECONDS = 30


class QuickServer(uvicorn.Server):
    """uvicorn's server, stopped in milliseconds instead of about 200 ms: uvicorn looks for a stop request every 100 ms
    and then sleeps 100 ms more before it waits (in 100 ms steps) for connections to close. Over a thousand servers
    a suite, that was minutes of waiting. The same steps, in the same order, looked at every 10 ms: stop accepting,
    ask each connection to finish, wait for connections and requests to end (at most GRACE_SECONDS, as a bound),
    then the app's lifespan shutdown."""

    async def main_loop(self) -> None:
        ticks = 0
        # on_tick(counter) refreshes the Date header when counter % 10 == 0: once a second here, as in uvicorn.
        while not await self.on_tick(0 if ticks % 100 == 0 else 1):
            ticks += 1
            await asyncio.sleep(STOP_POLL_SECONDS)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        deadline = time.monotonic() + GRACE_SECONDS
        while (self.server_state.connections or self.server_state.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(STOP_POLL_SECONDS)
        for task in self.server_state.tasks:
            task.cancel(msg="the test server stopped")
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()


@dataclass
class LiveServer:
    base_url: str
    app: Starlette
    server: uvicorn.Server

    @property
    def resources(self) -> Resources:
        """The running app's resources (guard, database), as its handlers see them."""
        found: Resources = self.app.state.resources
        return found

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)  # type: ignore[arg-type]


@contextmanager
def live_server(database_url: str, **settings: object) -> Iterator[LiveServer]:
    settings.setdefault("secret_key", secrets.token_urlsafe(32))
    if os.environ.get("TOKEN_BROKER_TEST_CONNECTORS_DIR"):  # to try manifests other than connectors/'s
        settings.setdefault("connectors_dir", Path(os.environ["TOKEN_BROKER_TEST_CONNECTORS_DIR"]))
    port = free_port()
    settings.setdefault("issuer", f"http://127.0.0.1:{port}")
    config_settings = replace(Settings.from_env({}), database_url=database_url, hashing=CHEAP_HASHING, **settings)
    app = create_app(config_settings)
    server = QuickServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", app=app, server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        import json

        return json.loads(self.body)


def raw_request(
    base_url: str, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> RawResponse:
    """Send exactly these header bytes (which a well-behaved client would refuse to send) and read the answer."""
    import socket

    host, port = base_url.removeprefix("http://").split(":")
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {host}:{port}".encode(), b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}".encode())
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, payload = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return RawResponse(status=int(status_line.split()[1]), headers=parsed, body=payload)
