"""The delivery client's HTTP/1.1 against real sockets on 127.0.0.1 that answer with scripted bytes: every way an answer
may be framed (Content-Length, chunked, the connection's end), interim answers, a receiver that closes early, talks
too long or not at all, and malformed answers. Only the status (and Retry-After) is kept; a connection is reused
only after an answer read whole."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable

import anyio
import pytest

from token_broker.webhooks import transport

LOCAL = ipaddress.ip_address("127.0.0.1")
# What the scripted receiver does with a request: given the request's raw bytes, the bytes to answer and whether to
# close the connection afterwards.
Script = Callable[[bytes], tuple[bytes, bool]]


class Scripted:
    """A receiver on 127.0.0.1 that answers every request with what `script` says, and records the raw requests."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer, close = self.script(request)
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def destination(port: int, path: str = "/in") -> transport.Destination:
    return transport.destination("http", "127.0.0.1", f"127.0.0.1:{port}", port, path, LOCAL)


def run(test: Callable[[transport.Client], Awaitable[None]]) -> None:
    async def main() -> None:
        async with transport.make_client() as client:
            with transport.approved(LOCAL):
                await test(client)

    anyio.run(main)


def answers(*scripted: bytes, close: bool = False) -> Script:
    queue = list(scripted)
    return lambda _request: (queue.pop(0) if len(queue) > 1 else queue[0], close)


async def send(client: transport.Client, receiver: Scripted, deadline: float | None = None) -> transport.Answer:
    head = b"webhook-id: evt_1\r\n"
    return await client.send(destination(receiver.port), head, b'{"a":1}', None, deadline)


def test_the_request_is_one_post_with_its_headers_and_body() -> None:
    async def test(client: transport.Client) -> None:
        async with Scripted(answers(b"HTTP/1.1 204 No Content\r\n\r\n")) as receiver:
            assert (await send(client, receiver)).status_code == 204
        [request] = receiver.requests
        head, body = request.split(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /in HTTP/1.1" and body == b'{"a":1}'
        assert {b"Host: 127.0.0.1:%d" % receiver.port, b"Content-Length: 7", b"webhook-id: evt_1"} <= set(lines)
        assert b"Content-Type: application/json" in lines

    run(test)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\n"
        b"X-Trailer: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0, 0\r\n\r\n",
    ],
    ids=["content-length", "chunked", "interim-100", "repeated-length"],
)
def test_an_answer_read_whole_leaves_its_connection_for_the_next_request(answer: bytes) -> None:
    async def test(client: transport.Client) -> None:
        async with Scripted(answers(answer)) as receiver:
            first, second = await send(client, receiver), await send(client, receiver)
        assert first.status_code == second.status_code == (204 if b" 204 " in answer else 200)
        assert receiver.connections == 1 and client.connections_opened == 1

    run(test)


@pytest.mark.parametrize(
    ("answer", "close"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\n\r\nthe body runs to the connection's end", True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (200 * 1024) + b"x" * (200 * 1024), False),
    ],
    ids=["connection-close", "until-close", "http-1.0", "body-past-the-drain-limit"],
)
def test_a_connection_that_cannot_carry_another_request_is_not_reused(answer: bytes, close: bool) -> None:
    async def test(client: transport.Client) -> None:
        async with Scripted(answers(answer, close=close)) as receiver:
            first, second = await send(client, receiver), await send(client, receiver)
        assert first.status_code == second.status_code == 200
        assert client.connections_opened == 2

    run(test)


def test_retry_after_is_kept_and_redirects_are_only_a_status() -> None:
    async def test(client: transport.Client) -> None:
        script = answers(
            b"HTTP/1.1 503 Busy\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\nContent-Length: 0\r\n\r\n",
        )
        async with Scripted(script) as receiver:
            busy, moved = await send(client, receiver), await send(client, receiver)
        assert (busy.status_code, busy.retry_after) == (503, "120")
        assert (moved.status_code, moved.retry_after) == (302, None)
        assert len(receiver.requests) == 2  # the redirect was not followed

    run(test)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Le",  # closed in the middle of the head
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",  # closed in the middle of the body
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",  # in the middle of a chunk
        b"",  # closed without a word
    ],
    ids=["head", "body", "chunk", "nothing"],
)
def test_a_connection_closed_before_the_answer_is_complete_is_an_error(answer: bytes) -> None:
    async def test(client: transport.Client) -> None:
        async with Scripted(answers(answer, close=True)) as receiver:
            with pytest.raises(transport.ProtocolError):
                await send(client, receiver)

    run(test)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2xx OK\r\n\r\n",
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\n folded: header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    ],
    ids=["status", "not-http", "two-lengths", "negative-length", "bad-chunk", "folded", "head-too-long", "upgrade"],
)
def test_a_malformed_answer_is_an_error_and_its_connection_is_dropped(answer: bytes) -> None:
    async def test(client: transport.Client) -> None:
        async with Scripted(answers(answer, b"HTTP/1.1 204 No Content\r\n\r\n")) as receiver:
            with pytest.raises(transport.ProtocolError):
                await send(client, receiver)
            assert (await send(client, receiver)).status_code == 204
        assert client.connections_opened == 2

    run(test)


def test_a_receiver_that_never_answers_times_out() -> None:
    async def test(client: transport.Client) -> None:
        async with Scripted(answers(b"")) as receiver:
            deadline = asyncio.get_running_loop().time() + 0.5
            with pytest.raises(transport.DeliveryTimeout):
                await send(client, receiver, deadline)
            assert len(receiver.requests) == 1

    run(test)


def test_a_port_where_no_one_listens_is_a_connect_error() -> None:
    async def test(client: transport.Client) -> None:
        async with Scripted(answers(b"")) as receiver:
            port = receiver.port
        with pytest.raises(transport.ConnectError):
            await client.send(destination(port), b"", b"{}")

    run(test)


def test_a_target_that_would_inject_into_the_head_is_refused() -> None:
    for path in ("/in\r\nX-Injected: 1", "/a b", "no-slash"):
        with pytest.raises(transport.ConnectError):
            destination(1, path)
