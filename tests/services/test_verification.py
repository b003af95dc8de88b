"""Verifying presented credentials: grace windows, revocation on the very next call, expiry, unknown ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support import Team
from token_broker import credentials
from token_broker.credentials import CredentialKind, SecretHasher
from token_broker.errors import InvalidCredential, MalformedCredential
from token_broker.services import keys, verification
from token_broker.services.keys import KeyRequest
from token_broker.store.database import Database
from token_broker.store.models import Credential, utcnow


def test_a_new_key_verifies_with_its_snapshot(database: Database, hasher: SecretHasher, team: Team) -> None:
    request = KeyRequest(name="k", scopes=["links:read"], allowed_ips=["10.0.0.0/8"], rate_limits=["3/second"])
    issued = keys.create_key(database, hasher, team.admin, team.account_id, request)
    found = verification.verify(database, hasher, issued.plaintext)
    assert found.id == issued.view.id
    assert found.account_id == team.account_id and found.workspace_name == "Acme"
    assert found.kind is CredentialKind.WORKSPACE_KEY
    assert found.scopes == ("links:read",)
    assert found.allowed_ips == ("10.0.0.0/8",)
    assert found.rate_limits == ("3/second",)
    assert found.valid_until is None


def test_old_secret_works_until_the_grace_ends_and_not_after(
    database: Database, hasher: SecretHasher, team: Team
) -> None:
    old = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k"))
    new = keys.rotate_key(database, hasher, team.admin, old.view.id, grace_seconds=3600)
    grace_until = new.view.grace_until
    assert grace_until is not None
    before_end = grace_until - timedelta(seconds=1)
    assert verification.verify(database, hasher, old.plaintext, now=before_end).valid_until == grace_until
    assert verification.verify(database, hasher, new.plaintext, now=before_end).valid_until is None
    with pytest.raises(InvalidCredential):
        verification.verify(database, hasher, old.plaintext, now=grace_until)
    assert verification.verify(database, hasher, new.plaintext, now=grace_until + timedelta(days=30)).id == old.view.id


def test_rotation_with_zero_grace_ends_the_old_secret_at_once(
    database: Database, hasher: SecretHasher, team: Team
) -> None:
    old = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k"))
    new = keys.rotate_key(database, hasher, team.admin, old.view.id, grace_seconds=0)
    assert new.view.grace_until is None
    with pytest.raises(InvalidCredential):
        verification.verify(database, hasher, old.plaintext)
    verification.verify(database, hasher, new.plaintext)


def test_a_second_rotation_ends_the_oldest_secret(database: Database, hasher: SecretHasher, team: Team) -> None:
    first = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k"))
    second = keys.rotate_key(database, hasher, team.admin, first.view.id)
    third = keys.rotate_key(database, hasher, team.admin, first.view.id)
    with pytest.raises(InvalidCredential):
        verification.verify(database, hasher, first.plaintext)
    verification.verify(database, hasher, second.plaintext)
    verification.verify(database, hasher, third.plaintext)


def test_a_revoked_key_fails_on_the_very_next_call(database: Database, hasher: SecretHasher, team: Team) -> None:
    issued = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k"))
    rotated = keys.rotate_key(database, hasher, team.admin, issued.view.id, grace_seconds=3600)
    verification.verify(database, hasher, issued.plaintext)
    keys.revoke_key(database, team.admin, issued.view.id)
    for secret in (issued.plaintext, rotated.plaintext):  # revocation has no grace, for any secret of the key
        with pytest.raises(InvalidCredential):
            verification.verify(database, hasher, secret)


def test_an_expired_key_is_refused(database: Database, hasher: SecretHasher, team: Team) -> None:
    issued = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k", expires_in=60))
    assert verification.verify(database, hasher, issued.plaintext).valid_until == issued.view.expires_at
    assert issued.view.expires_at is not None
    with pytest.raises(InvalidCredential, match="expired"):
        verification.verify(database, hasher, issued.plaintext, now=issued.view.expires_at)


def test_unknown_ids_wrong_secrets_and_wrong_kinds(database: Database, hasher: SecretHasher, team: Team) -> None:
    issued = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k"))
    unknown = credentials.generate(CredentialKind.WORKSPACE_KEY).plaintext
    wrong_secret = credentials.generate(CredentialKind.WORKSPACE_KEY, public_id=issued.view.id).plaintext
    wrong_kind = credentials.generate(CredentialKind.PARTNER_ACCESS, public_id=issued.view.id).plaintext
    refresh = credentials.generate(CredentialKind.PARTNER_REFRESH, public_id=issued.view.id).plaintext
    for presented in (unknown, wrong_secret, wrong_kind, refresh):
        with pytest.raises(InvalidCredential):
            verification.verify(database, hasher, presented)
    with pytest.raises(MalformedCredential):
        verification.verify(database, hasher, issued.plaintext[:-1])


def test_status_is_told_only_to_holders_of_the_secret(database: Database, hasher: SecretHasher, team: Team) -> None:
    issued = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k", expires_in=60))
    wrong_secret = credentials.generate(CredentialKind.WORKSPACE_KEY, public_id=issued.view.id).plaintext
    assert issued.view.expires_at is not None
    with pytest.raises(InvalidCredential) as raised:
        verification.verify(database, hasher, wrong_secret, now=issued.view.expires_at)
    assert "expired" not in raised.value.message


def test_last_used_is_written_in_batches_and_never_goes_back(
    database: Database, hasher: SecretHasher, team: Team
) -> None:
    a = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="a")).view.id
    b = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="b")).view.id
    later = utcnow()
    earlier = later - timedelta(minutes=5)
    verification.record_last_used(database, {a: later, b: earlier})
    verification.record_last_used(database, {a: earlier})
    verification.record_last_used(database, {})
    with database.read() as session:
        used = dict(session.execute(select(Credential.public_id, Credential.last_used_at)).all())
    assert used[a] is not None and abs(used[a] - later) < timedelta(milliseconds=1)
    assert used[b] is not None and abs(used[b] - earlier) < timedelta(milliseconds=1)
    listed = {view.id: view for view in keys.list_keys(database, team.viewer, team.account_id)}
    assert listed[a].last_used_at == used[a]
