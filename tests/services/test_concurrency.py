"""Racing changes to one key, from threads against one store: one consistent end state, one audit row per
acknowledged change, and never an error from a busy database."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from sqlalchemy import func, select

from tests.support import Team
from token_broker.credentials import SecretHasher
from token_broker.errors import Conflict, InvalidCredential
from token_broker.services import keys, verification
from token_broker.services.keys import IssuedKey, KeyRequest
from token_broker.store.database import Database
from token_broker.store.models import AuditEvent, Credential

T = TypeVar("T")
THREADS = 12


def race(count: int, action: Callable[[int], T]) -> list[T | Exception]:
    """Run `action(i)` for i in range(count) on as many threads, all released at once; collect results or errors."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T | Exception:
        barrier.wait()
        try:
            return action(index)
        except Exception as error:  # collected and asserted on by the caller
            return error

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def audit_count(database: Database, action: str, outcome: str) -> int:
    with database.read() as session:
        return (
            session.scalar(select(func.count()).where(AuditEvent.action == action, AuditEvent.outcome == outcome)) or 0
        )


def test_parallel_creations_each_make_one_key(database: Database, hasher: SecretHasher, team: Team) -> None:
    def create(index: int) -> IssuedKey:
        return keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(f"k{index}"))

    results = race(THREADS, create)
    assert all(isinstance(result, IssuedKey) for result in results), results
    listed = keys.list_keys(database, team.admin, team.account_id)
    assert sorted(view.name for view in listed) == sorted(f"k{i}" for i in range(THREADS))
    assert len({view.id for view in listed}) == THREADS
    assert audit_count(database, "credential.created", "ok") == THREADS


def test_parallel_rotations_apply_one_after_another(database: Database, hasher: SecretHasher, team: Team) -> None:
    original = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest("k"))
    results = race(THREADS, lambda _i: keys.rotate_key(database, hasher, team.admin, original.view.id, 3600))
    rotated = [result for result in results if isinstance(result, IssuedKey)]
    assert len(rotated) == THREADS, [r for r in results if not isinstance(r, IssuedKey)]
    assert audit_count(database, "credential.rotated", "ok") == THREADS
    with database.read() as session:
        row = session.scalars(select(Credential)).one()
    assert row.version == 1 + THREADS
    # exactly one secret is current and at most one more is in its grace window: the last two rotations'
    working = []
    for candidate in [original, *rotated]:
        try:
            verification.verify(database, hasher, candidate.plaintext)
            working.append(candidate)
        except InvalidCredential:
            pass
    assert len(working) == 2
    assert any(hasher.verify(row.secret_hash, candidate.plaintext) for candidate in working)


def test_parallel_revocations_acknowledge_exactly_one(database: Database, hasher: SecretHasher, team: Team) -> None:
    issued = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest("k"))
    results = race(THREADS, lambda _i: keys.revoke_key(database, team.admin, issued.view.id))
    successes = [result for result in results if isinstance(result, keys.CredentialView)]
    assert len(successes) == 1
    assert all(isinstance(result, Conflict) for result in results if result not in successes)
    assert audit_count(database, "credential.revoked", "ok") == 1
    assert audit_count(database, "credential.revoked", "refused") == THREADS - 1
    with pytest.raises(InvalidCredential):
        verification.verify(database, hasher, issued.plaintext)


def test_rotations_racing_a_revocation_end_revoked(database: Database, hasher: SecretHasher, team: Team) -> None:
    issued = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest("k"))

    def act(index: int) -> object:
        if index == THREADS // 2:
            return keys.revoke_key(database, team.admin, issued.view.id)
        return keys.rotate_key(database, hasher, team.admin, issued.view.id, 3600)

    results = race(THREADS, act)
    errors = [result for result in results if isinstance(result, Exception)]
    assert all(isinstance(error, Conflict) for error in errors), errors
    rotations = [result for result in results if isinstance(result, IssuedKey)]
    assert audit_count(database, "credential.rotated", "ok") == len(rotations)
    assert audit_count(database, "credential.revoked", "ok") == 1
    assert audit_count(database, "credential.rotated", "refused") == len(errors)
    with database.read() as session:
        row = session.scalars(select(Credential)).one()
    assert row.status == "revoked" and row.previous_secret_hash is None
    assert row.version == 1 + len(rotations) + 1
    for secret in [issued.plaintext, *(r.plaintext for r in rotations)]:
        with pytest.raises(InvalidCredential):
            verification.verify(database, hasher, secret)
