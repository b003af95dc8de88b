"""The verification cache: argon2 runs once per credential per cache lifetime, not once per request.

Entries are keyed by an HMAC-SHA256 of the presented secret under a key made at start and never stored, so the cache
holds no secret and no unkeyed hash of one. Each entry is a snapshot of what the credential may do; it ends at the
snapshot's own deadline (expiry, or the end of a rotation's grace), after `ttl` seconds, or when invalidated by id.
Refusals of a well-formed credential are kept too (a wrong, revoked or expired secret never becomes right again), so
a client that keeps presenting a dead key costs no argon2 and spends none of its id's failure budget.

A verification that read the store before a change committed may finish after the change was announced: `put` is
given the generation read when the verification started and does not keep a success for a credential invalidated
since (nor any success after a `clear`), so a stale snapshot is never cached past its change.
"""

from __future__ import annotations

from token_broker.digest_cache import FORGET_RECORDS, DigestCache
from token_broker.errors import CredentialRefused
from token_broker.services.verification import VerifiedCredential

Outcome = VerifiedCredential | CredentialRefused

__all__ = ["FORGET_RECORDS", "Outcome", "VerificationCache"]


class VerificationCache(DigestCache[Outcome]):
    def __init__(self, max_entries: int = 50_000, ttl_seconds: float = 300.0) -> None:
        super().__init__(max_entries, ttl_seconds)

    def put(self, digest: bytes, outcome: Outcome, since: int | None = None) -> None:
        """Keep an outcome; a success whose verification began at generation `since` only if its credential was not
        invalidated meanwhile. A success ends at its own deadline (expiry, or the end of a rotation's grace)."""
        if isinstance(outcome, VerifiedCredential):
            valid_until = outcome.valid_until.timestamp() if outcome.valid_until is not None else None
            self.keep(digest, outcome, outcome.id, valid_until, since)
        else:
            self.keep(digest, outcome, None, None, None)
