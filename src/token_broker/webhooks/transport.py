"""The HTTP client that deliveries go through: it connects only to the address the SSRF check just approved.

The worker resolves a hook's host, checks every address (`ssrf.resolve`), and sends the request to that address with
the host name in the `Host` header and as the TLS server name (`sni_hostname`), so certificates are still checked
against the name. Nothing resolves the name a second time, so a DNS answer that changes between the check and the
connection (rebinding) changes nothing. Below that, the client's network backend refuses to open a connection to any
address but the one approved for the delivery running in the current task (a context variable), so a request that
somehow named another host never leaves the machine. Redirects are not followed, proxies from the environment are
ignored, and connections are not kept alive: a pooled TLS connection verified for one host name must never carry a
request for another name on the same address.
"""

from __future__ import annotations

import ipaddress
import ssl
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpcore
import httpx

from token_broker.net.ssrf import IPAddress

CONNECT_SECONDS = 5.0
READ_SECONDS = 10.0

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


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose network backend is ApprovedAddressesOnly."""

    def __init__(self, verify: ssl.SSLContext | bool = True, max_connections: int = 100) -> None:
        super().__init__(verify=verify, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=ApprovedAddressesOnly(),
        )


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
