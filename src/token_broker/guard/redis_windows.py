"""Rate limit windows kept in Redis, shared by every instance: the same exact moving windows as `guard.ratelimits`.

Each (credential, limit) is a Redis list of the times (microseconds, Redis's own clock, so instances with skewed
clocks agree) of its admissions within the period, oldest first. One Lua script, atomic in Redis, takes all of a
credential's limits at once: drops the times that left each window, refuses when any window is full (counting the
request against none), else appends the time to every window and answers the numbers of the RateLimit-* headers for
the limit closest to running out. A check costs one round trip and O(1) amortised work in Redis; a list never holds
more than its limit's count, and expires a second after its newest admission leaves the window.

The keys of one credential share a hash tag (`{id}`), so the script also runs on Redis Cluster.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from token_broker.guard.ratelimits import Decision, parsed_limit

if TYPE_CHECKING:
    from redis.asyncio import Redis

KEY_PREFIX = "token-broker:rl:"
TIMEOUT_SECONDS = 0.5  # connect and answer; past it the request is decided by the in-process windows
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,100}")

# KEYS[i]: the window of limit i. ARGV[1]: now in microseconds, or "" for Redis's clock (tests pass their own).
# ARGV[2i], ARGV[2i+1]: count and period in seconds of limit i. Returns {allowed, limit, remaining, reset}.
WINDOW_SCRIPT = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local best_remaining, best_limit, best_reset = nil, 0, 0
for i = 1, #KEYS do
  local key, count, period = KEYS[i], tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]) * 1000000
  local oldest = redis.call('LINDEX', key, 0)
  while oldest and tonumber(oldest) <= now - period do
    redis.call('LPOP', key)
    oldest = redis.call('LINDEX', key, 0)
  end
  local size = redis.call('LLEN', key)
  if size >= count then
    return {0, count, 0, math.max(1, math.ceil((tonumber(oldest) + period - now) / 1000000))}
  end
  local remaining, reset = count - size - 1, period / 1000000
  if oldest then
    reset = math.ceil((tonumber(oldest) + period - now) / 1000000)
  end
  if best_remaining == nil or remaining < best_remaining then
    best_remaining, best_limit, best_reset = remaining, count, math.max(0, reset)
  end
end
local stamp = string.format('%.0f', now)
for i = 1, #KEYS do
  redis.call('RPUSH', KEYS[i], stamp)
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i + 1]) * 1000 + 1000)
end
if best_remaining == nil then
  return {1, 0, 0, 0}
end
return {1, best_limit, best_remaining, best_reset}
"""


class SharedLimitsUnavailable(Exception):
    """Redis did not answer (refused, timed out, errored): the caller decides with its own windows."""


def window_key(name: str, limit: str) -> str:
    """The Redis key of one window; names outside a safe alphabet (a client id taken from a Basic header) are hashed."""
    if not _SAFE_NAME.fullmatch(name):
        name = "sha256:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{KEY_PREFIX}{{{name}}}:{limit}"


class RedisWindows:
    """The shared windows, through redis-py's asyncio client (a small pool, no retries: a failure falls back)."""

    def __init__(self, client: Redis) -> None:
        from redis.exceptions import RedisError

        self.client = client
        self._script = client.register_script(WINDOW_SCRIPT)
        self._failures: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

    @classmethod
    def from_url(cls, url: str) -> RedisWindows:
        try:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError:
            raise RuntimeError(
                "TOKEN_BROKER_REDIS_URL needs the redis extra: pip install 'token-broker[redis]'"
            ) from None

        client = Redis.from_url(
            url,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
            max_connections=64,
            client_name="token-broker",
        )
        return cls(client)

    async def hit(self, name: str, limits: tuple[str, ...], now_us: int | None = None) -> Decision:
        if not limits:
            return Decision(True, 0, 0, 0)
        args: list[Any] = ["" if now_us is None else str(now_us)]
        for limit in limits:
            args.extend(parsed_limit(limit))
        try:
            answer = await self._script(keys=[window_key(name, limit) for limit in limits], args=args)
        except self._failures as error:
            raise SharedLimitsUnavailable(type(error).__name__) from error
        allowed, count, remaining, reset = (int(value) for value in answer)
        return Decision(bool(allowed), count, remaining, reset)

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except self._failures as error:
            raise SharedLimitsUnavailable(type(error).__name__) from error

    async def close(self) -> None:
        await self.client.aclose()
