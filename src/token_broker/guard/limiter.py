"""The rate limiter the guard and the token endpoint use: shared windows in Redis when TOKEN_BROKER_REDIS_URL is set
and Redis answers, this instance's own windows otherwise.

When Redis stops answering, the request at hand and every later one are decided in process (each instance then
admits up to the full limit on its own: per-instance limits), which is logged once per outage and shown in the
metrics; never an error to the client. A background task asks Redis every RETRY_SECONDS meanwhile and, when it
answers, limits are shared again. Windows are not carried across the switch: the first minutes after it count from
what each side saw (admissions made in process and not yet reconciled with Redis, at most a batch per credential,
are not carried either).
"""

from __future__ import annotations

import logging
import time

import anyio

from token_broker.guard.ratelimits import CredentialRateLimiter, Decision
from token_broker.guard.redis_windows import RedisWindows, SharedLimitsUnavailable
from token_broker.guard.shared_batches import BatchedWindows

log = logging.getLogger("token_broker.guard")
RETRY_SECONDS = 1.0


# In process, names of the form "kind:rest" (the token endpoint's "client:<client id>") are kept in a container of
# their kind, apart from credential ids (no colon) and bounded on its own, so that junk names of one kind (client ids
# are public, and anyone may send any) cannot evict the windows of another.
OTHER_KINDS_WINDOWS = 50_000
MAX_KINDS = 8


class RateLimiter:
    def __init__(self, shared: RedisWindows | None = None, local: CredentialRateLimiter | None = None) -> None:
        self.shared = shared
        # Large limits are decided in process and reconciled with Redis in batches (guard.shared_batches).
        self.batched = BatchedWindows(shared, self._went_away) if shared is not None else None
        self.local = local or CredentialRateLimiter()
        self.local_by_kind: dict[str, CredentialRateLimiter] = {}
        self.shared_active = shared is not None
        self.redis_errors = 0
        self.outages = 0
        self._down_since = 0.0

    @property
    def mode(self) -> str:
        return "shared" if self.shared_active else "local"

    async def hit(self, name: str, limits: tuple[str, ...]) -> Decision:
        """Count one request of `name` (a credential id, or a client for the token endpoint) against its limits."""
        if self.batched is not None and self.shared_active:
            try:
                return await self.batched.hit(name, limits)
            except SharedLimitsUnavailable as error:
                self._went_away(str(error))
        return self.local_for(name).hit(name, limits)

    def local_for(self, name: str) -> CredentialRateLimiter:
        """The in-process container that keeps `name`'s windows."""
        kind, colon, _ = name.partition(":")
        if not colon:
            return self.local
        found = self.local_by_kind.get(kind)
        if found is None:
            if len(self.local_by_kind) >= MAX_KINDS:
                kind = "other"
            found = self.local_by_kind.setdefault(kind, CredentialRateLimiter(max_windows=OTHER_KINDS_WINDOWS))
        return found

    def _went_away(self, reason: str) -> None:
        self.redis_errors += 1
        if self.shared_active:
            self.shared_active = False
            self.outages += 1
            self._down_since = time.monotonic()
            log.warning("Redis is unavailable (%s): rate limits are per instance until it answers again", reason)

    async def watch_forever(self) -> None:
        """Check Redis at start; while it is away, ask it again every RETRY_SECONDS and share limits once it answers."""
        if self.shared is None:
            return
        try:
            await self.shared.ping()
        except SharedLimitsUnavailable as error:
            self._went_away(str(error))
        while True:
            await anyio.sleep(RETRY_SECONDS)
            if self.shared_active:
                continue
            try:
                await self.shared.ping()
            except SharedLimitsUnavailable:
                self.redis_errors += 1
                continue
            self.shared_active = True
            log.info(
                "Redis answers again after %.1f s: rate limits are shared again", time.monotonic() - self._down_since
            )

    async def close(self) -> None:
        if self.batched is not None and self.shared_active:
            await self.batched.close()  # the admissions not yet reconciled, before the connections go
        if self.shared is not None:
            await self.shared.close()
