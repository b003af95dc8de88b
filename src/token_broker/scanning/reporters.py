"""The trusted reporters' key sets: fetched from the configured URLs through an injected httpx.AsyncClient, kept in
memory, and fetched again when a report names a key identifier none of them holds, or once they are an hour old;
never more than one round of fetches a minute, however many reports arrive, so that a flood of made-up identifiers
costs the reporters nothing. A set that cannot be fetched keeps its last good keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import httpx
from starlette.requests import HTTPConnection

from token_broker.errors import ReporterKeysUnavailable, UnknownReporterKey
from token_broker.scanning.signatures import KeySetError, PublicKey, parse_key_set

log = logging.getLogger("token_broker.scanning")
MIN_REFRESH_SECONDS = 60.0
MAX_AGE_SECONDS = 3600.0
MAX_KEY_SET_BYTES = 256 * 1024


@dataclass(frozen=True)
class TrustedKey:
    key: PublicKey
    reporter: str  # the key-set URL it came from, named in audit rows


class ReporterKeys:
    def __init__(
        self,
        urls: Sequence[str],
        client: httpx.AsyncClient,
        min_refresh_seconds: float = MIN_REFRESH_SECONDS,
        max_age_seconds: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._urls = tuple(urls)
        self._client = client
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._clock = clock
        self._by_url: dict[str, dict[str, PublicKey]] = {}
        self._last_attempt: float | None = None
        self._lock = anyio.Lock()
        self.fetch_rounds = 0

    async def keys_for(self, identifier: str) -> list[TrustedKey]:
        """The keys published under this identifier by any trusted reporter (usually one)."""
        if self._last_attempt is None or self._clock() - self._last_attempt >= self._max_age:
            await self._refresh()
        found = self._lookup(identifier)
        if not found:
            await self._refresh()
            found = self._lookup(identifier)
        if found:
            return found
        if not self._by_url:
            raise ReporterKeysUnavailable("No trusted reporter's key set could be fetched yet; retry in a minute.")
        raise UnknownReporterKey("No trusted reporter publishes a key with this Github-Public-Key-Identifier.")

    def _lookup(self, identifier: str) -> list[TrustedKey]:
        return [TrustedKey(keys[identifier], url) for url, keys in self._by_url.items() if identifier in keys]

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._last_attempt is not None and now - self._last_attempt < self._min_refresh:
                return
            self._last_attempt = now
            self.fetch_rounds += 1
            for url in self._urls:
                try:
                    self._by_url[url] = parse_key_set(await self._fetch(url))
                except (httpx.HTTPError, KeySetError) as error:
                    log.warning("could not fetch the secret-scanning key set at %s: %s", url, error)

    async def _fetch(self, url: str) -> bytes:
        async with self._client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_KEY_SET_BYTES:
                    raise KeySetError(f"the key set is larger than {MAX_KEY_SET_BYTES} bytes")
            return bytes(body)


def make_client() -> httpx.AsyncClient:
    """The client the app fetches key sets with: short timeouts, no redirects (a key set is where it is configured)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(10.0), follow_redirects=False, trust_env=False)


def reporter_keys(connection: HTTPConnection) -> ReporterKeys:
    """The running app's reporters' key sets, which its lifespan puts in the request state."""
    found: ReporterKeys = connection.state.reporter_keys
    return found
