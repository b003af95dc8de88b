"""The HTTP client that deliveries go through: it connects only to the address the SSRF check just approved.

The worker resolves a hook's host, checks every address (`ssrf.resolve`), and sends the request to that address with
the host name in the `Host` header and as the TLS server name (`sni_hostname`), so certificates are still checked
against the name. Nothing resolves the name a second time, so a DNS answer that changes between the check and the
connection (rebinding) changes nothing. Below that, the transport refuses any request whose URL is not the address
approved for the delivery running in the current task (a context variable), and the client's network backend refuses
to open a connection to any other address, so a request that somehow named another host never leaves the machine.
Redirects are not followed and proxies from the environment are ignored.

Connections are kept alive and reused, which spares a TCP (and TLS) handshake per delivery. A pool matches
connections by scheme, address and port only, so there is one pool per TLS server name: a TLS connection verified for
one host name never carries a request for another name on the same address. Plain HTTP names no server, so its
requests share one pool (the Host header says the name, as through any proxy). At most `MAX_POOLS` pools are kept;
the least recently used idle one is closed to make room.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import ssl
import sys
import time
import typing
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import anyio
import httpcore
import httpx

from token_broker.net.ssrf import IPAddress

CONNECT_SECONDS = 5.0
READ_SECONDS = 10.0
KEEPALIVE_SECONDS = 5.0
MAX_POOLS = 256

# httpcore imports sniffio every time it makes a lock (several per request) and takes asyncio when that fails; anyio 4
# no longer brings sniffio, and a failed import searches the whole of sys.path again each time (a twelfth of a
# delivery worker's time). A None entry makes the import fail at once, which changes nothing else.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

_approved: ContextVar[frozenset[IPAddress]] = ContextVar("token_broker_webhook_approved", default=frozenset())


@contextmanager
def approved(address: IPAddress) -> Iterator[None]:
    """Allow connections to this address, and no other, in the current task while the block runs."""
    token = _approved.set(frozenset({address}))
    try:
        yield
    finally:
        _approved.reset(token)


class ApprovedAddressesOnly(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to the address approved for the current delivery."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            address: IPAddress | None = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        except ValueError:
            address = None
        if address is None or address not in _approved.get():
            raise httpcore.ConnectError("webhook delivery refused: that address was not approved by the SSRF check")
        return await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhook delivery refused: no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Connections:
    """Kept-alive connections, handed out last used first. httpcore's own pool checks every connection's socket on
    every request, a cost that grows with the pool (a sixth of a delivery worker's time with 32 in flight); this one
    checks only the connection it hands out, and sweeps expired idle ones at most once per KEEPALIVE_SECONDS."""

    def __init__(self, ssl_context: ssl.SSLContext, max_idle: int) -> None:
        self._ssl_context, self._max_idle = ssl_context, max_idle
        self._backend = ApprovedAddressesOnly()
        self._idle: dict[tuple[bytes, bytes, int | None], list[httpcore.AsyncHTTPConnection]] = {}
        self._next_sweep = 0.0
        self._closed = False

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        await self._sweep()
        idle = self._idle.setdefault((request.url.scheme, request.url.host, request.url.port), [])
        connection: httpcore.AsyncHTTPConnection | None = None
        while idle and connection is None:
            candidate = idle.pop()
            if candidate.is_idle() and not candidate.has_expired():
                connection = candidate
            else:
                await candidate.aclose()
        if connection is None:
            connection = httpcore.AsyncHTTPConnection(
                origin=request.url.origin, ssl_context=self._ssl_context, keepalive_expiry=KEEPALIVE_SECONDS,
                http1=True, http2=False, retries=0, network_backend=self._backend,
            )  # fmt: skip
        try:
            response = await connection.handle_async_request(request)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await connection.aclose()
            raise
        assert isinstance(response.stream, typing.AsyncIterable)
        kept = connection

        async def done() -> None:
            if kept.is_idle() and not self._closed and len(idle) < self._max_idle:
                idle.append(kept)
            else:
                await kept.aclose()

        response.stream = _ThenAsync(response.stream, done)
        return response

    async def _sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + KEEPALIVE_SECONDS
        for key, idle in list(self._idle.items()):
            expired = [connection for connection in idle if connection.has_expired()]
            for connection in expired:
                idle.remove(connection)
                await connection.aclose()
            if not idle:
                del self._idle[key]

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = [c for connections in self._idle.values() for c in connections], {}
        for connection in idle:
            await connection.aclose()


class _ThenAsync:
    """A response's body stream that calls `done` once closed."""

    def __init__(self, inner: typing.AsyncIterable[bytes], done: Callable[[], Awaitable[None]]) -> None:
        self._inner, self._done = inner, done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            if hasattr(self._inner, "aclose"):
                await self._inner.aclose()
        finally:
            done, self._done = self._done, _nothing
            await done()


async def _nothing() -> None:
    return None


class _Pool(httpx.AsyncHTTPTransport):
    """httpx's transport (request and error mapping) over `_Connections`, whose network backend is
    ApprovedAddressesOnly."""

    def __init__(self, ssl_context: ssl.SSLContext, max_connections: int) -> None:
        super().__init__(verify=ssl_context, trust_env=False)  # the shared context: making one loads the CA bundle
        self._pool = _Connections(ssl_context, max_idle=max_connections)  # type: ignore[assignment]
        self.in_flight = 0


class _Counted(httpx.AsyncByteStream):
    """A response's body stream that says when it is closed, so that its pool is known to be idle."""

    def __init__(self, inner: httpx.AsyncByteStream, closed: Callable[[], None]) -> None:
        self._inner, self._closed = inner, closed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            closed, self._closed = self._closed, lambda: None
            closed()


class PinnedTransport(httpx.AsyncBaseTransport):
    """Requests to approved addresses only, over keep-alive pools kept apart by TLS server name."""

    def __init__(self, verify: ssl.SSLContext | bool = True, max_connections: int = 100) -> None:
        self._ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        self._max_connections = max_connections
        self._pools: OrderedDict[str, _Pool] = OrderedDict()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            address: IPAddress | None = ipaddress.ip_address(request.url.host)
        except ValueError:
            address = None
        if address is None or address not in _approved.get():
            raise httpx.ConnectError("webhook delivery refused: that address was not approved by the SSRF check")
        pool = await self._pool_for(request)
        pool.in_flight += 1

        def closed() -> None:
            pool.in_flight -= 1

        try:
            response = await pool.handle_async_request(request)
        except BaseException:
            closed()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Counted(response.stream, closed),
            extensions=response.extensions,
        )

    async def _pool_for(self, request: httpx.Request) -> _Pool:
        name = str(request.extensions.get("sni_hostname") or "") if request.url.scheme == "https" else ""
        key = f"{request.url.scheme}:{name}"
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool
        idle = [other for other, kept in self._pools.items() if kept.in_flight == 0]
        for other in idle[: max(0, len(self._pools) + 1 - MAX_POOLS)]:
            await self._pools.pop(other).aclose()
        pool = self._pools[key] = _Pool(self._ssl_context, self._max_connections)
        return pool

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()


def make_client(verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """The client the delivery worker is given: pinned transport, no redirects, no proxies, short timeouts."""
    return httpx.AsyncClient(
        transport=PinnedTransport(verify=verify),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(READ_SECONDS, connect=CONNECT_SECONDS),
        headers={"User-Agent": "token-broker-webhooks/1"},
    )


def pinned_request(
    client: httpx.AsyncClient,
    scheme: str,
    host: str,
    host_header: str,
    port: int,
    path: str,
    address: IPAddress,
    headers: dict[str, str],
    body: bytes,
) -> httpx.Request:
    """A POST to `address` that says `host` in its Host header and, over TLS, as its server name."""
    shown = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    extensions: dict[str, typing.Any] = {}
    if scheme == "https" and host != str(address):
        extensions["sni_hostname"] = host
    return client.build_request(
        "POST",
        f"{scheme}://{shown}:{port}{path}",
        headers={**headers, "Host": host_header, "Content-Type": "application/json"},
        content=body,
        extensions=extensions,
    )
