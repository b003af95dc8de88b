"""The Guard: from request headers to a verified credential, with argon2 off the event loop and rarely run at all."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import anyio
from anyio import to_thread

from token_broker import credentials
from token_broker.credentials import SecretHasher
from token_broker.errors import CredentialRefused, InvalidCredential, IpNotAllowed
from token_broker.guard.addresses import address_allowed
from token_broker.guard.cache import VerificationCache
from token_broker.guard.headers import presented_credential
from token_broker.guard.limiter import RateLimiter
from token_broker.guard.ratelimits import Decision
from token_broker.guard.throttle import FailureThrottle
from token_broker.guard.usage import UsageRecorder
from token_broker.services import verification
from token_broker.services.verification import INVALID_MESSAGE, VerifiedCredential
from token_broker.store.database import Database

# argon2 at its defaults takes 64 MiB and ~100 ms of one core: at most this many run at once.
ARGON2_CONCURRENCY = 2


@dataclass
class _Pending:
    """One verification in flight; requests presenting the same secret meanwhile wait for its outcome."""

    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: VerifiedCredential | CredentialRefused | None = None


class Guard:
    def __init__(self, database: Database, hasher: SecretHasher, rate_limiter: RateLimiter | None = None):
        self.database = database
        self.hasher = hasher
        self.cache = VerificationCache()
        self.throttle = FailureThrottle()
        self.rate_limiter = rate_limiter or RateLimiter()
        self.usage = UsageRecorder()
        self.argon2_verifications = 0
        self._argon2 = anyio.CapacityLimiter(ARGON2_CONCURRENCY)
        self._pending: dict[bytes, _Pending] = {}

    async def authenticate(
        self, raw_headers: Iterable[tuple[bytes, bytes]], client_address: str | None
    ) -> VerifiedCredential:
        """The credential the request presents, verified and allowed from this address; CredentialRefused if not."""
        presented = presented_credential(raw_headers)
        digest = self.cache.digest(presented)
        outcome = self.cache.get(digest)  # a cached digest was parsed when first seen: no need to parse again
        if outcome is None:
            parsed = credentials.parse(presented)
            outcome = await self._verify(parsed, digest, client_address or "unknown")
        if isinstance(outcome, CredentialRefused):
            raise type(outcome)(outcome.message)
        if not address_allowed(client_address, outcome.allowed_ips):
            raise IpNotAllowed(
                f"This key may not be used from {client_address or 'an unknown address'}: "
                "add the address to the key's allowed IPs, or call from an allowed network."
            )
        self.usage.touch(outcome.id, time.time())
        return outcome

    async def rate_limit(self, credential: VerifiedCredential) -> Decision:
        return await self.rate_limiter.hit(credential.id, credential.rate_limits)

    def forget(self, credential_id: str) -> None:
        """A credential changed (rotated, revoked, disconnected): its next request is verified afresh."""
        self.cache.invalidate(credential_id)

    async def _verify(
        self, parsed: credentials.ParsedCredential, digest: bytes, address: str
    ) -> VerifiedCredential | CredentialRefused:
        pending = self._pending.get(digest)
        if pending is not None:
            await pending.done.wait()
            if pending.outcome is not None:
                return pending.outcome
        if not self.throttle.admit(parsed.public_id, address):
            return InvalidCredential(INVALID_MESSAGE)
        pending = self._pending[digest] = _Pending()
        since = self.cache.generation
        try:
            outcome = pending.outcome = await self._check_in_thread(parsed.plaintext)
        finally:  # on an unexpected error the waiters find no outcome and verify for themselves
            del self._pending[digest]
            pending.done.set()
        if isinstance(outcome, VerifiedCredential):
            self.throttle.succeeded(parsed.public_id, address)
        self.cache.put(digest, outcome, since)
        return outcome

    async def _check_in_thread(self, presented: str) -> VerifiedCredential | CredentialRefused:
        def check() -> VerifiedCredential | CredentialRefused:
            self.argon2_verifications += 1
            try:
                return verification.verify(self.database, self.hasher, presented)
            except CredentialRefused as refusal:
                return refusal

        return await to_thread.run_sync(check, limiter=self._argon2)
