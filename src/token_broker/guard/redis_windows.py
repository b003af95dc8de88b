"""Rate limit windows kept in Redis, shared by every instance: the same moving windows as `guard.ratelimits`.

Each (credential, limit) of up to EXACT_UP_TO per period is a Redis list of the times (microseconds, Redis's own
clock, so instances with skewed clocks agree) of its admissions within the period, oldest first; a larger limit is a
hash of admissions per 1/SLICES of its period, so that its memory does not grow with the limit. One Lua script,
atomic in Redis, takes all of a credential's limits at once: drops the times that left each window, refuses when any
window is full (counting the request against none), else appends the time to every window and answers the numbers of
the RateLimit-* headers for the limit closest to running out. A check costs (a share of) one round trip and O(1)
amortised work in Redis; a list never holds more than its limit's count (a hash more than SLICES + 1 fields), and
expires a second after its newest admission leaves the window.

The keys of one credential share a hash tag (`{id}`), so the script also runs on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from token_broker.guard.ratelimits import EXACT_UP_TO, SLICES, Decision, parsed_limit

if TYPE_CHECKING:
    from redis.asyncio import Redis

KEY_PREFIX = "token-broker:rl:"
TIMEOUT_SECONDS = 0.5  # connect and answer; past it the request is decided by the in-process windows
MAX_CONNECTIONS = 32
IN_FLIGHT = 2  # pipelines out at once
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,100}")

# KEYS[i]: the window of limit i. ARGV[1]: now in microseconds, or "" for Redis's clock (tests pass their own).
# ARGV[2i], ARGV[2i+1]: count and period in seconds of limit i. ARGV[2n+2] (optional): admissions this instance made
# that Redis has not counted yet (guard.shared_batches), taken as used. Returns {allowed, limit, remaining, reset}.
# A limit of up to EXACT_UP_TO is a list of admission times; a larger one a hash of per-slice counts (slice index to
# count, at most SLICES + 1 fields), as `guard.ratelimits` keeps them in process.
# What both scripts share: Redis's clock (or the test's), and one window's admissions after dropping those that left it.
# A limit of up to EXACT_UP_TO is a list of admission times; a larger one a hash of per-slice counts (slice index to
# count, at most SLICES + 1 fields), as `guard.ratelimits` keeps them in process. `window_used` answers the admissions
# in the window and when the oldest of them leaves it (nil for an empty window).
PRELUDE = """
local exact_up_to, slices = @EXACT_UP_TO@, @SLICES@
local function clock(given)
  if given == '' then
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return tonumber(given)
end
local function window_used(key, count, period, now)
  local used, frees_at = 0, nil
  if count <= exact_up_to then
    local oldest = redis.call('LINDEX', key, 0)
    while oldest and tonumber(oldest) <= now - period do
      redis.call('LPOP', key)
      oldest = redis.call('LINDEX', key, 0)
    end
    used = redis.call('LLEN', key)
    if oldest then
      frees_at = tonumber(oldest) + period
    end
  else
    local slice = period / slices
    local oldest_counted = math.floor(now / slice) - slices
    local fields = redis.call('HGETALL', key)
    local oldest = nil
    for j = 1, #fields, 2 do
      local index = tonumber(fields[j])
      if index < oldest_counted then
        redis.call('HDEL', key, fields[j])
      else
        used = used + tonumber(fields[j + 1])
        if oldest == nil or index < oldest then
          oldest = index
        end
      end
    end
    if oldest then
      frees_at = (oldest + slices + 1) * slice
    end
  end
  return used, frees_at
end
""".replace("@EXACT_UP_TO@", str(EXACT_UP_TO)).replace("@SLICES@", str(SLICES))

# KEYS[i]: the window of limit i. ARGV[1]: now in microseconds, or "" for Redis's clock (tests pass their own).
# ARGV[2i], ARGV[2i+1]: count and period in seconds of limit i. ARGV[2n+2] (optional): admissions this instance made
# that Redis has not counted yet (guard.shared_batches), taken as used. Returns {allowed, limit, remaining, reset}.
WINDOW_SCRIPT = (
    PRELUDE
    + """
local now = clock(ARGV[1])
local uncounted = tonumber(ARGV[2 * #KEYS + 2]) or 0
local best_remaining, best_limit, best_reset = nil, 0, 0
for i = 1, #KEYS do
  local key, count, period = KEYS[i], tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]) * 1000000
  local used, frees_at = window_used(key, count, period, now)
  used = used + uncounted
  if used >= count then
    if not frees_at then
      frees_at = now + period
    end
    return {0, count, 0, math.max(1, math.ceil((frees_at - now) / 1000000))}
  end
  local remaining, reset = count - used - 1, period / 1000000
  if frees_at then
    reset = math.ceil((frees_at - now) / 1000000)
  end
  if best_remaining == nil or remaining < best_remaining then
    best_remaining, best_limit, best_reset = remaining, count, math.max(0, reset)
  end
end
local stamp = string.format('%.0f', now)
for i = 1, #KEYS do
  local count, period = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]) * 1000000
  if count <= exact_up_to then
    redis.call('RPUSH', KEYS[i], stamp)
  else
    redis.call('HINCRBY', KEYS[i], string.format('%.0f', math.floor(now / (period / slices))), 1)
  end
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i + 1]) * 1000 + 1000)
end
if best_remaining == nil then
  return {1, 0, 0, 0}
end
return {1, best_limit, best_remaining, best_reset}
"""
)


# Admissions an instance already made on its own (guard.shared_batches), added to the shared windows whatever they
# hold, and the state of the window closest to running out, for the instance's next local decisions.
# KEYS[i]: the window of limit i. ARGV[1]: now in microseconds, or "". ARGV[2]: the admissions to add.
# ARGV[2i+1], ARGV[2i+2]: count and period in seconds of limit i. Returns {limit, left, reset}: the limit with the
# fewest slots left (count minus admissions in its window, after adding; negative past it) and its reset in seconds.
ADD_SCRIPT = (
    PRELUDE
    + """
local now = clock(ARGV[1])
local added = tonumber(ARGV[2])
local best_left, best_limit, best_reset = nil, 0, 0
local stamp = string.format('%.0f', now)
for i = 1, #KEYS do
  local key, count, period = KEYS[i], tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2]) * 1000000
  if count <= exact_up_to then
    for _ = 1, added do
      redis.call('RPUSH', key, stamp)
    end
  else
    redis.call('HINCRBY', key, string.format('%.0f', math.floor(now / (period / slices))), added)
  end
  local used, frees_at = window_used(key, count, period, now)
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 2]) * 1000 + 1000)
  local left = count - used
  if best_left == nil or left < best_left then
    local reset = math.ceil(((frees_at or now + period) - now) / 1000000)
    best_left, best_limit, best_reset = left, count, math.max(0, reset)
  end
end
return {best_limit, best_left, best_reset}
"""
)


@dataclass(frozen=True)
class WindowsSeen:
    """The shared window closest to running out, as Redis answered: its limit, the slots left, its reset."""

    limit: int
    left: int
    reset_seconds: int


class SharedLimitsUnavailable(Exception):
    """Redis did not answer (refused, timed out, errored): the caller decides with its own windows."""


def window_key(name: str, limit: str) -> str:
    """The Redis key of one window; names outside a safe alphabet (a client id taken from a Basic header) are hashed."""
    if not _SAFE_NAME.fullmatch(name):
        name = "sha256:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{KEY_PREFIX}{{{name}}}:{limit}"


class RedisWindows:
    """The shared windows, through redis-py's asyncio client.

    Checks go to Redis in pipelines, at most IN_FLIGHT at a time; checks made meanwhile wait for the next one. Under
    load one round trip (and one pass through redis-py) serves many requests, which costs a request a fraction of a
    round trip of its own (see `scripts/bench scale`). Each check is its own EVALSHA, atomic on its own. No retries:
    a failure is answered at once by the caller's own windows.
    """

    def __init__(self, client: Redis) -> None:
        from redis.exceptions import NoScriptError, RedisError

        self.client = client
        self._sha = client.register_script(WINDOW_SCRIPT).sha
        self._add_sha = client.register_script(ADD_SCRIPT).sha
        self._no_script = NoScriptError
        self._failures: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._waiting: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self.round_trips = 0

    @classmethod
    def from_url(cls, url: str) -> RedisWindows:
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError:
            raise RuntimeError(
                "TOKEN_BROKER_REDIS_URL needs the redis extra: pip install 'token-broker[redis]'"
            ) from None
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=TIMEOUT_SECONDS,  # waiting for a free connection
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
            client_name="token-broker",
        )
        return cls(Redis.from_pool(pool))  # the client owns the pool: closing it closes the connections

    async def hit(self, name: str, limits: tuple[str, ...], now_us: int | None = None, uncounted: int = 0) -> Decision:
        """Check and count one request; `uncounted`: admissions this instance made that Redis has not counted yet."""
        if not limits:
            return Decision(True, 0, 0, 0)
        keys = [window_key(name, limit) for limit in limits]
        command: list[Any] = ["EVALSHA", self._sha, len(keys), *keys, "" if now_us is None else str(now_us)]
        for limit in limits:
            command.extend(parsed_limit(limit))
        if uncounted:
            command.append(uncounted)
        answer = await self._send(command)
        allowed, count, remaining, reset = (int(value) for value in answer)
        return Decision(bool(allowed), count, remaining, reset)

    async def add(self, name: str, limits: tuple[str, ...], admitted: int, now_us: int | None = None) -> WindowsSeen:
        """Count `admitted` admissions already made against every one of `name`'s shared windows, full or not."""
        keys = [window_key(name, limit) for limit in limits]
        command: list[Any] = ["EVALSHA", self._add_sha, len(keys), *keys, "" if now_us is None else str(now_us)]
        command.append(admitted)
        for limit in limits:
            command.extend(parsed_limit(limit))
        seen_limit, left, reset = (int(value) for value in await self._send(command))
        return WindowsSeen(seen_limit, left, reset)

    async def _send(self, command: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, future))
        self._start_sending()
        return await future

    def _start_sending(self) -> None:
        """Send what waits, unless IN_FLIGHT pipelines are out already: then it goes when one comes back, with
        whatever joined meanwhile (the busier the server, the bigger the batches)."""
        if self._waiting and len(self._sending) < IN_FLIGHT:
            task = asyncio.create_task(self._send_waiting())
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._start_sending()

    async def _send_waiting(self) -> None:
        await asyncio.sleep(0)  # let the checks of this turn of the loop join
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        try:
            answers = await self._pipeline([command for command, _ in batch])
            if any(isinstance(answer, self._no_script) for answer in answers):  # Redis restarted: load the script
                await self.client.script_load(WINDOW_SCRIPT)
                await self.client.script_load(ADD_SCRIPT)
                again = [index for index, answer in enumerate(answers) if isinstance(answer, self._no_script)]
                for index, answer in zip(again, await self._pipeline([batch[i][0] for i in again]), strict=True):
                    answers[index] = answer
        except Exception as error:  # whatever it was, every waiting request must hear of it, and not hang
            answers = [SharedLimitsUnavailable(type(error).__name__)] * len(batch)
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():  # its request went away meanwhile
                continue
            if isinstance(answer, BaseException):
                failure = (
                    answer if isinstance(answer, SharedLimitsUnavailable) else SharedLimitsUnavailable(str(answer))
                )
                future.set_exception(failure)
            else:
                future.set_result(answer)

    async def _pipeline(self, commands: list[list[Any]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        self.round_trips += 1
        answers: list[Any] = await pipe.execute(raise_on_error=False)
        return answers

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except self._failures as error:
            raise SharedLimitsUnavailable(type(error).__name__) from error

    async def close(self) -> None:
        for task in list(self._sending):
            task.remove_done_callback(self._sent)
            task.cancel()
        await self.client.aclose()
