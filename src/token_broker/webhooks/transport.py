"""The HTTP client that deliveries go through: HTTP/1.1 POSTs to the address the SSRF check just approved, and no other.

The worker resolves a hook's host, checks every address (`ssrf.resolve`), and sends the request to that address with
the host name in the `Host` header and, over TLS, as the server name (SNI), against which the certificate is checked.
Nothing resolves the name a second time, so a DNS answer that changes between the check and the connection
(rebinding) changes nothing. Below that, the client refuses to open a connection to any address but the one approved
for the delivery running in the current task (a context variable), so a request that somehow named another address
never leaves the machine. Redirects are not followed (an answer is only a status to record); no proxy is used.

It is a small client on asyncio's transports rather than httpx, which cost a quarter of a delivery worker's CPU: each
request is one pre-encoded write, each answer is parsed from the bytes as they come (status line and headers, then
the body framed by Content-Length, chunked coding or the connection's end) and its body is counted and thrown away,
never kept. An answer's head may be MAX_HEAD_BYTES long at most; a body longer than DRAIN_BYTES is not read on, its
connection is closed instead of reused. Timeouts: CONNECT_SECONDS to connect (TLS included), READ_SECONDS for the
whole answer once the request is written, and every step within the attempt's own deadline.

Connections are kept alive and reused (last used first), which spares a TCP (and TLS) handshake per delivery. They
are kept apart by scheme, address, port and TLS server name, so a connection verified for one host name never carries
a request for another name on the same address. At most MAX_POOLS such keys keep idle connections; the least recently
used is closed to make room. An idle connection is dropped after KEEPALIVE_SECONDS, or as soon as its server closes it
or says anything out of turn.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import certifi

from token_broker.net.ssrf import IPAddress

CONNECT_SECONDS = 5.0
READ_SECONDS = 10.0
KEEPALIVE_SECONDS = 5.0
CLOSE_SECONDS = 1.0
MAX_POOLS = 256
MAX_IDLE = 100  # idle connections kept per pool
MAX_HEAD_BYTES = 64 * 1024  # an answer's status line and headers
DRAIN_BYTES = 64 * 1024  # an answer's body up to this is read and dropped, so its connection stays usable
MAX_CHUNK_LINE = 4096
USER_AGENT = "token-broker-webhooks/1"

T = TypeVar("T")
_approved: ContextVar[frozenset[IPAddress]] = ContextVar("token_broker_webhook_approved", default=frozenset())


@contextmanager
def approved(address: IPAddress) -> Iterator[None]:
    """Allow connections to this address, and no other, in the current task while the block runs."""
    token = _approved.set(frozenset({address}))
    try:
        yield
    finally:
        _approved.reset(token)


class DeliveryError(Exception):
    """The request could not be made or its answer not read: worth another attempt later."""


class ConnectError(DeliveryError):
    """No connection: refused by the rules here, or by the network, or the TLS handshake failed."""


class ProtocolError(DeliveryError):
    """The answer was not HTTP/1.1 as it should be, or the connection ended before it was complete."""


class DeliveryTimeout(DeliveryError, TimeoutError):
    """A step took longer than its timeout or the attempt's deadline."""


@dataclass(frozen=True, slots=True)
class Destination:
    """Where one hook's requests go, and the part of their head that is the same for every request to it."""

    scheme: str
    address: IPAddress
    port: int
    server_name: str | None  # the TLS server name (SNI, and the name the certificate must carry); None for http
    head: bytes  # request line, Host and the constant headers; each request adds its own and the blank line

    @property
    def key(self) -> tuple[str, IPAddress, int, str | None]:
        return (self.scheme, self.address, self.port, self.server_name)


def destination(scheme: str, host: str, host_header: str, port: int, path: str, address: IPAddress) -> Destination:
    """A target's requests go to `address`, saying `host` in Host and, over TLS, as the server name. The path and
    host come from `ssrf.parse_target` (printable ASCII, no spaces), which is checked again here: they go into the
    request's head as they are."""
    for part in (host_header, path):
        if not (part.isascii() and part.isprintable()) or " " in part:
            raise ConnectError("webhook delivery refused: the target is not printable ASCII")
    if not path.startswith("/"):
        raise ConnectError("webhook delivery refused: the target's path must start with /")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
        "Content-Type: application/json\r\nAccept: */*\r\n"
    ).encode("ascii")
    server_name = host if scheme == "https" else None
    return Destination(scheme, address, port, server_name, head)


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    retry_after: str | None


class Passage(Protocol):
    """What a request waits for before its first byte, and tells once it has been written (or writing failed)."""

    async def opened(self) -> None: ...

    def written(self) -> None: ...


# Parser states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(8)


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, key: tuple[str, IPAddress, int, str | None]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.lost = False  # asyncio let go of it: its socket is closed
        self.idle_until = 0.0
        self._buffer = bytearray()
        self._answer: asyncio.Future[Answer] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._reusable = True
        self.wrote = False  # whether a request was (begun to be) written on it
        self._reset()

    def _reset(self) -> None:
        self._state = _HEAD
        self._status = 0
        self._retry_after: str | None = None
        self._remaining = 0
        self._body_read = 0
        self._trailer_bytes = 0

    # asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=0)  # pause_writing as soon as anything waits: "written" means sent

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():  # nothing was asked: a server speaking out of turn
            self._reusable = False
            self.close()
            return
        self._buffer += data
        try:
            self._advance()
        except ProtocolError as error:
            self._fail(error)

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.lost = True
        self._ended()
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(ProtocolError("the connection was closed while the request was written"))

    def _ended(self) -> None:
        self._reusable = False
        if self._answer is not None and not self._answer.done():
            if self._state == _UNTIL_CLOSE:
                self._finish()
            else:
                self._fail(ProtocolError("the connection was closed before the answer was complete"))

    # the client's side

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def forget_answer(self) -> None:
        """An answer's failure that nobody awaits any more (the request failed first) is not an error to report."""
        answer, self._answer = self._answer, None
        if answer is not None and answer.done() and not answer.cancelled():
            answer.exception()

    @property
    def reusable(self) -> bool:
        return self._reusable and not self.closed

    async def request(self, data: bytes, passage: Passage | None, deadline: float) -> Answer:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        if passage is not None:
            await passage.opened()  # may raise: nothing was written, the connection stays usable
        try:
            if self.closed:
                raise ProtocolError("the connection was closed before the request was written")
            self._reset()
            self._buffer.clear()
            self._answer = loop.create_future()
            self.wrote = True
            self.transport.write(data)
            if self._paused:
                self._drained = loop.create_future()
                await _within(self._drained, deadline, "writing the request")
        finally:
            if passage is not None:
                passage.written()
        return await _within(self._answer, min(deadline, loop.time() + READ_SECONDS), "reading the answer")

    # parsing the answer

    def _advance(self) -> None:
        buffer = self._buffer
        while buffer:
            state = self._state
            if state == _HEAD:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD_BYTES:
                        raise ProtocolError("the answer's headers are too long")
                    return
                if end > MAX_HEAD_BYTES:
                    raise ProtocolError("the answer's headers are too long")
                head = bytes(buffer[:end])
                del buffer[: end + 4]
                self._head(head)
            elif state in (_LENGTH, _CHUNK_DATA, _UNTIL_CLOSE):
                taken = len(buffer) if state == _UNTIL_CLOSE else min(len(buffer), self._remaining)
                del buffer[:taken]
                self._remaining -= taken
                self._body_read += taken
                if self._body_read > DRAIN_BYTES:  # not worth reading on: the connection is closed instead
                    self._reusable = False
                    self._finish()
                    return
                if self._remaining == 0 and state != _UNTIL_CLOSE:
                    if state == _LENGTH:
                        self._finish()
                    else:
                        self._state = _CHUNK_END
            elif state in (_CHUNK_SIZE, _CHUNK_END, _TRAILERS):
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_CHUNK_LINE:
                        raise ProtocolError("the answer's chunked body is malformed")
                    return
                line = bytes(buffer[:end])
                del buffer[: end + 2]
                self._line(state, line)
            else:  # _DONE, with bytes after the answer: the connection is not in a state to carry another request
                self._reusable = False
                return

    def _line(self, state: int, line: bytes) -> None:
        if state == _CHUNK_END:
            if line:
                raise ProtocolError("the answer's chunked body is malformed")
            self._state = _CHUNK_SIZE
        elif state == _CHUNK_SIZE:
            size = line.split(b";", 1)[0].strip()
            if not size or len(size) > 16 or size.strip(b"0123456789abcdefABCDEF"):
                raise ProtocolError("the answer's chunked body is malformed")
            self._remaining = int(size, 16)
            self._state = _CHUNK_DATA if self._remaining else _TRAILERS
        else:  # trailers, skipped to the blank line that ends them
            self._trailer_bytes += len(line) + 2
            if self._trailer_bytes > MAX_HEAD_BYTES:
                raise ProtocolError("the answer's trailers are too long")
            if not line:
                self._finish()

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0]
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or not code.isdigit() or rest[3:4] not in (b"", b" "):
            raise ProtocolError("the answer is not HTTP/1.1")
        status = int(code)
        if status < 100:
            raise ProtocolError("the answer is not HTTP/1.1")
        length: bytes | None = None
        chunked = False
        framed_by_coding = False
        keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
                raise ProtocolError("the answer has a malformed header")
            name, value = name.lower(), value.strip()
            if name == b"content-length":
                values = {part.strip() for part in value.split(b",")}
                if len(values) != 1 or (length is not None and length not in values):
                    raise ProtocolError("the answer's Content-Length is malformed")
                length = values.pop()
                if not length.isdigit() or len(length) > 18:
                    raise ProtocolError("the answer's Content-Length is malformed")
            elif name == b"transfer-encoding":
                framed_by_coding = True
                chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
            elif name == b"connection":
                tokens = {token.strip() for token in value.lower().split(b",")}
                keep_alive = b"close" not in tokens and (keep_alive or b"keep-alive" in tokens)
            elif name == b"retry-after":
                self._retry_after = value.decode("latin-1")
        if status < 200:
            if status == 101:
                raise ProtocolError("the answer switched protocols")
            self._retry_after = None  # an interim answer (100 Continue, 103): the real one follows
            return
        self._status = status
        if not keep_alive:
            self._reusable = False
        if status in (204, 304):
            self._finish()
        elif framed_by_coding:
            if chunked:
                self._state = _CHUNK_SIZE
            else:  # a coding without chunked last: the body runs to the connection's end
                self._reusable = False
                self._state = _UNTIL_CLOSE
        elif length is not None:
            self._remaining = int(length)
            self._state = _LENGTH
            if self._remaining == 0:
                self._finish()
        else:
            self._reusable = False
            self._state = _UNTIL_CLOSE

    def _finish(self) -> None:
        self._state = _DONE
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(Answer(self._status, self._retry_after))

    def _fail(self, error: Exception) -> None:
        self._reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.close()


def _expire(future: asyncio.Future[Any], what: str) -> None:
    if not future.done():
        future.set_exception(DeliveryTimeout(f"timed out {what}"))


async def _within(future: asyncio.Future[T], deadline: float, what: str) -> T:
    loop = asyncio.get_running_loop()
    if not future.done():
        timer = loop.call_at(deadline, _expire, future, what)
        try:
            return await future
        finally:
            timer.cancel()
    return future.result()


class Client:
    """Requests to approved addresses only, over kept-alive connections kept apart by TLS server name."""

    def __init__(self, verify: ssl.SSLContext | bool = True) -> None:
        self._verify = verify
        self._ssl: ssl.SSLContext | None = verify if isinstance(verify, ssl.SSLContext) else None
        self._idle: OrderedDict[tuple[str, IPAddress, int, str | None], list[_Connection]] = OrderedDict()
        self._open: set[_Connection] = set()
        self._next_sweep = 0.0
        self._closed = False
        self.connections_opened = 0

    async def send(
        self, to: Destination, head: bytes, body: bytes, passage: Passage | None = None, deadline: float | None = None
    ) -> Answer:
        """POST `body` to `to`, its head being `to.head` + `head` (this request's own header lines, each ending in
        CRLF) + Content-Length. `passage`, when given, is waited for once the connection is up, before the first
        byte. The attempt ends by `deadline` (the event loop's clock) at the latest."""
        if self._closed:
            raise ConnectError("the webhook client is closed")
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + CONNECT_SECONDS + READ_SECONDS
        if to.address not in _approved.get():
            raise ConnectError("webhook delivery refused: that address was not approved by the SSRF check")
        connection = self._reuse(to.key) or await self._connect(to, deadline)
        data = b"".join((to.head, head, b"Content-Length: %d\r\n\r\n" % len(body), body))
        connection.wrote = False
        try:
            answer = await connection.request(data, passage, deadline)
        except BaseException:
            if connection.wrote:
                self._discard(connection)
            else:  # stopped at the passage: the connection carried nothing and can be used again
                self._put_back(connection)
            raise
        self._put_back(connection)
        return answer

    async def post(self, url: str, body: bytes = b"", passage: Passage | None = None) -> Answer:
        """POST to a URL whose host is an address (a name is never connected to): for tests and tools."""
        parts = urlsplit(url)
        try:
            address: IPAddress = ipaddress.ip_address(parts.hostname or "")
        except ValueError:
            raise ConnectError("webhook delivery refused: only an address approved by the SSRF check") from None
        scheme = parts.scheme
        port = parts.port or (443 if scheme == "https" else 80)
        host = str(address)
        shown = f"[{host}]" if address.version == 6 else host
        to = destination(scheme, host, f"{shown}:{port}", port, parts.path or "/", address)
        return await self.send(to, b"", body, passage)

    def _ssl_context(self) -> ssl.SSLContext:
        """Made at the first https connection: loading the CA bundle costs more than many deliveries."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=certifi.where())  # certifi: the roots httpx trusted
            if not self._verify:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        return self._ssl

    def _reuse(self, key: tuple[str, IPAddress, int, str | None]) -> _Connection | None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.reusable and now < connection.idle_until:
                self._idle.move_to_end(key)
                return connection
            self._discard(connection)
        return None

    async def _connect(self, to: Destination, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        timeout = min(CONNECT_SECONDS, deadline - loop.time())
        if timeout <= 0:
            raise DeliveryTimeout("timed out before connecting")
        tls = to.scheme == "https"
        self.connections_opened += 1
        try:
            _transport, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(to.key), host=str(to.address), port=to.port,
                    ssl=self._ssl_context() if tls else None, server_hostname=to.server_name if tls else None,
                ),
                timeout,
            )  # fmt: skip
        except TimeoutError:
            raise DeliveryTimeout("timed out connecting") from None
        except OSError as error:  # refused, unreachable, a certificate that does not verify (ssl.SSLError)
            raise ConnectError(str(error) or type(error).__name__) from None
        self._open.add(connection)
        return connection

    def _put_back(self, connection: _Connection) -> None:
        if not connection.reusable or self._closed:
            self._discard(connection)
            return
        idle = self._idle.get(connection.key)
        if idle is None:
            if len(self._idle) >= MAX_POOLS:
                _, evicted = self._idle.popitem(last=False)
                for other in evicted:
                    self._discard(other)
            idle = self._idle[connection.key] = []
        if len(idle) >= MAX_IDLE:
            self._discard(connection)
            return
        connection.idle_until = time.monotonic() + KEEPALIVE_SECONDS
        idle.append(connection)

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        connection.forget_answer()
        self._open.discard(connection)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + KEEPALIVE_SECONDS
        for key, idle in list(self._idle.items()):
            kept = [connection for connection in idle if connection.reusable and now < connection.idle_until]
            for connection in idle:
                if connection not in kept:
                    self._discard(connection)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]

    async def aclose(self) -> None:
        """Close every connection: gracefully (TLS says close_notify), then at once for any still open after
        CLOSE_SECONDS, so that no socket outlives the client."""
        self._closed = True
        self._idle.clear()
        connections, self._open = list(self._open), set()
        for connection in connections:
            connection.close()
            connection.forget_answer()
        deadline = time.monotonic() + CLOSE_SECONDS
        while any(not connection.lost for connection in connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in connections:
            if not connection.lost and connection.transport is not None:
                connection.transport.abort()
        await asyncio.sleep(0)  # the aborted transports' sockets close in the loop's next round

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


def make_client(verify: ssl.SSLContext | bool = True) -> Client:
    """The client the delivery worker is given: approved addresses only, no redirects, no proxies, short timeouts."""
    return Client(verify)
