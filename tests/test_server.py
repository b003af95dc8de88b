"""`serve --workers N` listens on a socket whose connections answer without Nagle's delay.

Connections accepted on a listening socket inherit its protocol number, and asyncio turns Nagle's algorithm off only on
connections whose number says TCP. uvicorn's own socket for its workers leaves the number at 0, so each answer on a
kept-alive connection waited for the client's delayed ACK. These tests hold the socket `serve` makes to what asyncio
needs, and `serve` to handing that socket to its workers.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import uvicorn

from token_broker import server
from token_broker.config import Settings
from token_broker.observe import logs


def nodelay_of_an_accepted_connection(listening: socket.socket) -> int:
    """TCP_NODELAY on the server side of a connection accepted by an asyncio server on `listening`."""
    seen: list[int] = []

    class Note(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def connect_once() -> None:
        served = await asyncio.get_running_loop().create_server(Note, sock=listening)
        async with served:
            host, port = listening.getsockname()[:2]
            _reader, writer = await asyncio.open_connection(host, port)
            for _ in range(200):
                if seen:
                    break
                await asyncio.sleep(0.05)
            writer.close()

    asyncio.run(connect_once())
    assert seen, "the server accepted no connection"
    return seen[0]


def test_the_workers_socket_lets_asyncio_turn_nagles_algorithm_off() -> None:
    with server.listening_socket("127.0.0.1", 0) as listening:
        assert listening.proto == socket.IPPROTO_TCP
        assert listening.get_inheritable()
        assert nodelay_of_an_accepted_connection(listening) != 0


def test_the_workers_socket_on_ipv6(require_ipv6: None) -> None:
    with server.listening_socket("::1", 0) as listening:
        assert listening.family == socket.AF_INET6
        assert nodelay_of_an_accepted_connection(listening) != 0


@pytest.fixture
def require_ipv6() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.fail("this machine has no IPv6 loopback; the IPv6 case cannot run here")


def test_serve_hands_its_workers_that_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handed: list[tuple[uvicorn.Config, list[socket.socket]]] = []

    class Supervisor:
        def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
            handed.append((config, sockets))

        def run(self) -> None:
            pass

    monkeypatch.setattr(server, "Multiprocess", Supervisor)
    monkeypatch.setattr(logs, "configure", lambda _level: None)  # leave this process's logging alone
    monkeypatch.setenv("TOKEN_BROKER_DATABASE_URL", "")  # serve sets it for its workers; restored after
    url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = Settings.from_env({"TOKEN_BROKER_DATABASE_URL": url, "TOKEN_BROKER_ISSUER": "http://127.0.0.1:8000"})
    server.serve(settings, "127.0.0.1", 0, workers=3)
    [(config, sockets)] = handed
    assert (config.app, config.factory, config.workers) == (server.FACTORY, True, 3)
    assert not config.proxy_headers and not config.server_header and not config.access_log
    [listening] = sockets
    with listening:
        assert nodelay_of_an_accepted_connection(listening) != 0


def test_serve_says_so_when_it_cannot_listen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "configure", lambda _level: None)
    monkeypatch.setenv("TOKEN_BROKER_DATABASE_URL", "")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = Settings.from_env({"TOKEN_BROKER_DATABASE_URL": url, "TOKEN_BROKER_ISSUER": "http://127.0.0.1:8000"})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as exit_:
            server.serve(settings, "127.0.0.1", taken.getsockname()[1], workers=2)
    assert exit_.value.code != 0
