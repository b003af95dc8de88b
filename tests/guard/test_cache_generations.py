"""A verification that read the store before a change, and finishes after the change was announced, is not cached."""

from __future__ import annotations

from tests.guard.snapshots import snapshot
from token_broker.errors import InvalidCredential
from token_broker.guard import cache as cache_module
from token_broker.guard.cache import VerificationCache


def test_a_success_verified_across_an_invalidation_is_not_kept() -> None:
    cache = VerificationCache()
    since = cache.generation  # the verification starts
    cache.invalidate("AAAAAAAAAAAA")  # the key is revoked meanwhile, and the change heard
    cache.put(cache.digest("a"), snapshot("AAAAAAAAAAAA"), since)
    assert cache.get(cache.digest("a")) is None
    cache.put(cache.digest("b"), snapshot("BBBBBBBBBBBB"), since)  # another credential is unaffected
    assert cache.get(cache.digest("b")) is not None
    later = cache.generation
    cache.put(cache.digest("a"), snapshot("AAAAAAAAAAAA"), later)  # verified afresh after the change
    assert cache.get(cache.digest("a")) is not None


def test_refusals_are_kept_and_a_clear_voids_every_verification_in_flight() -> None:
    cache = VerificationCache()
    since = cache.generation
    cache.clear()
    cache.put(cache.digest("a"), snapshot("AAAAAAAAAAAA"), since)
    assert cache.get(cache.digest("a")) is None
    cache.put(cache.digest("x"), InvalidCredential("no"), since)  # a wrong secret never becomes right
    assert cache.get(cache.digest("x")) is not None


def test_forgotten_records_are_bounded() -> None:
    cache = VerificationCache()
    since = cache.generation
    for index in range(cache_module.FORGET_RECORDS + 5):
        cache.invalidate(f"{index:012d}")
    assert len(cache._forgotten) == cache_module.FORGET_RECORDS
    # an id whose record was dropped is treated as invalidated after `since`: nothing stale is kept
    cache.put(cache.digest("a"), snapshot("000000000000"), since)
    assert cache.get(cache.digest("a")) is None
