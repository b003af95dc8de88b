"""The Guard: from request headers to a verified credential, with argon2 off the event loop and rarely run at all.

Argon2 runs in the guard's own bounded hashing pool (`token_broker.hashing_pool`), never in the thread pool the
database calls share; failures are throttled per (credential id, source) and per source before it runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import anyio

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
from token_broker.hashing_pool import HashingBusy, HashingPool
from token_broker.services import verification
from token_broker.services.verification import INVALID_MESSAGE, VerifiedCredential
from token_broker.sources import source_of
from token_broker.store.database import Database

# argon2 at its defaults takes 64 MiB and ~100 ms of one core: at most this many run at once.
ARGON2_CONCURRENCY = 2
# A verification whose credential changed while it ran is done again; past this many rounds the request is told to
# retry (a credential changing that often is being rotated or revoked anyway).
VERIFY_ROUNDS = 3


@dataclass
class _Pending:
    """One verification in flight; requests presenting the same secret meanwhile wait for its outcome.

    `since` is the cache generation read before the store was: an outcome for a credential invalidated after it may
    predate a change that committed (and was answered) while the verification ran."""

    since: int
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: VerifiedCredential | CredentialRefused | None = None


class Guard:
    def __init__(
        self,
        database: Database,
        hasher: SecretHasher,
        rate_limiter: RateLimiter | None = None,
        pool: HashingPool | None = None,
    ):
        self.database = database
        self.hasher = hasher
        self.cache = VerificationCache()
        self.throttle = FailureThrottle(name_per_source=True)
        self.rate_limiter = rate_limiter or RateLimiter()
        self.usage = UsageRecorder()
        self.store_verifications = 0  # whatever the hash: argon2id for keys, SHA-256 for partner tokens
        self.pool = pool or HashingPool("verify-secrets", threads=ARGON2_CONCURRENCY)
        self._pending: dict[bytes, _Pending] = {}

    async def authenticate(
        self, raw_headers: Iterable[tuple[bytes, bytes]], client_address: str | None
    ) -> VerifiedCredential:
        """The credential the request presents, verified and allowed from this address; CredentialRefused if not.

        HashingBusy when its verification cannot be queued (the caller answers 503 with Retry-After)."""
        presented = presented_credential(raw_headers)
        digest = self.cache.digest(presented)
        outcome = self.cache.get(digest)  # a cached digest was parsed when first seen: no need to parse again
        if outcome is None:
            parsed = credentials.parse(presented)
            outcome = await self._verify(parsed, digest, source_of(client_address))
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
        """A credential changed (rotated, revoked, disconnected): its next request is verified afresh. Called from the
        store's after-commit hook (any thread), the LISTEN connection and the change-note poll."""
        self.cache.invalidate(credential_id)

    async def _verify(
        self, parsed: credentials.ParsedCredential, digest: bytes, source: str
    ) -> VerifiedCredential | CredentialRefused:
        rounds = 0
        while True:
            pending = self._pending.get(digest)
            if pending is None:
                pending = await self._lead(parsed, digest, source)
            else:
                await pending.done.wait()
            outcome = pending.outcome
            if outcome is None:  # the verification failed or was abandoned: try again, perhaps leading it
                continue
            if not isinstance(outcome, VerifiedCredential) or not self.cache.changed_since(outcome.id, pending.since):
                return outcome
            # The credential changed while it was verified: that change may have committed, and been answered,
            # before this request arrived, so the outcome may be stale. Verify it again.
            rounds += 1
            if rounds >= VERIFY_ROUNDS:
                raise HashingBusy(1)

    async def _lead(self, parsed: credentials.ParsedCredential, digest: bytes, source: str) -> _Pending:
        """Verify in the pool, as the one verification of this digest that others wait for; its _Pending, done."""
        if not self.throttle.admit(parsed.public_id, source):
            # This source's budget, not the secret's verdict: not shared with requests from other sources waiting.
            refused = _Pending(since=self.cache.generation, outcome=InvalidCredential(INVALID_MESSAGE))
            refused.done.set()
            return refused
        pending = self._pending[digest] = _Pending(since=self.cache.generation)
        try:
            suspect = self.throttle.suspect(source)
            try:
                outcome = await self.pool.run(source, lambda: self._check(parsed.plaintext), suspect)
            except HashingBusy:
                self.throttle.succeeded(parsed.public_id, source)  # nothing was checked: the attempt costs nothing
                raise
            pending.outcome = outcome
        finally:  # on an error or a shed job the waiters find no outcome and verify for themselves
            if self._pending.get(digest) is pending:
                del self._pending[digest]
            pending.done.set()
        if isinstance(outcome, VerifiedCredential):
            self.throttle.succeeded(parsed.public_id, source)
        else:
            self.throttle.failed(source)
        self.cache.put(digest, outcome, pending.since)
        return pending

    def _check(self, presented: str) -> VerifiedCredential | CredentialRefused:
        self.store_verifications += 1
        try:
            return verification.verify(self.database, self.hasher, presented)
        except CredentialRefused as refusal:
            return refusal
