"""The key store's rules, on SQLite and PostgreSQL: who may do what, what is stored, what is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support import Team
from token_broker.credentials import SecretHasher
from token_broker.errors import Conflict, Forbidden, InvalidInput, NotFound
from token_broker.services import keys
from token_broker.services.actors import Actor
from token_broker.services.keys import KeyRequest
from token_broker.store.database import Database
from token_broker.store.models import AuditEvent, Credential, utcnow


def audit_rows(database: Database) -> list[AuditEvent]:
    with database.read() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_create_shows_the_plaintext_once_and_stores_only_a_hash(
    database: Database, hasher: SecretHasher, team: Team
) -> None:
    request = KeyRequest(
        name="Reporting",
        scopes=["links:read", "analytics:read"],
        expires_in=3600,
        allowed_ips=["203.0.113.0/24", "2001:db8::/48"],
        rate_limits=["10/second", "1000/day"],
    )
    issued = keys.create_key(database, hasher, team.admin, team.account_id, request)
    view = issued.view
    assert issued.plaintext.startswith(f"nim_key_{view.id}_")
    assert view.kind == "workspace_key" and view.platform is None and view.status == "active"
    assert view.scopes == ("links:read", "analytics:read")
    assert view.allowed_ips == ("203.0.113.0/24", "2001:db8::/48")
    assert view.rate_limits == ("10/second", "1000/day")
    assert view.created_by == team.admin.label
    assert view.expires_at is not None and view.expires_at - view.created_at == timedelta(seconds=3600)
    assert issued.plaintext not in repr(issued)
    with database.read() as session:
        row = session.scalars(select(Credential)).one()
    assert row.secret_hash.startswith("$argon2id$")
    assert issued.plaintext not in str(vars(row))
    listed = keys.list_keys(database, team.viewer, team.account_id)
    assert [item.id for item in listed] == [view.id]
    assert "key" not in listed[0].to_json()


def test_defaults_for_a_new_key(database: Database, hasher: SecretHasher, team: Team) -> None:
    view = keys.create_key(database, hasher, team.owner, team.account_id, KeyRequest(name="Plain")).view
    assert view.scopes is None  # the full workspace API
    assert view.rate_limits == ("60/minute", "5000/hour")
    assert view.allowed_ips == ()
    assert view.expires_at is None and view.last_used_at is None and view.grace_until is None


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_list_but_change_nothing(
    database: Database, hasher: SecretHasher, team: Team, role: str
) -> None:
    actor: Actor = getattr(team, role)
    key_id = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k")).view.id
    assert len(keys.list_keys(database, actor, team.account_id)) == 1
    with pytest.raises(Forbidden):
        keys.create_key(database, hasher, actor, team.account_id, KeyRequest(name="nope"))
    with pytest.raises(Forbidden):
        keys.rotate_key(database, hasher, actor, key_id)
    with pytest.raises(Forbidden):
        keys.revoke_key(database, actor, key_id)
    refused = [row for row in audit_rows(database) if row.outcome == "refused"]
    assert [(row.action, row.reason, row.actor) for row in refused] == [
        ("credential.created", "forbidden", actor.label),
        ("credential.rotated", "forbidden", actor.label),
        ("credential.revoked", "forbidden", actor.label),
    ]
    assert keys.list_keys(database, team.admin, team.account_id)[0].status == "active"


def test_another_workspace_is_not_found(database: Database, hasher: SecretHasher, team: Team) -> None:
    key_id = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k")).view.id
    with pytest.raises(NotFound):
        keys.list_keys(database, team.outsider, team.account_id)
    with pytest.raises(NotFound):
        keys.create_key(database, hasher, team.outsider, team.account_id, KeyRequest(name="x"))
    with pytest.raises(NotFound):
        keys.revoke_key(database, team.outsider, key_id)
    with pytest.raises(NotFound):
        keys.rotate_key(database, hasher, team.outsider, key_id)
    # an admin naming the right id under another workspace's path sees nothing either
    with pytest.raises(NotFound):
        keys.revoke_key(database, team.admin, key_id, account_id=team.other_account_id)
    with pytest.raises(NotFound):
        keys.list_keys(database, team.admin, "acc_doesnotexist")
    assert keys.list_keys(database, team.admin, team.account_id)[0].status == "active"


def test_every_change_and_refusal_is_audited_without_secrets(
    database: Database, hasher: SecretHasher, team: Team
) -> None:
    before = len(audit_rows(database))
    issued = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k"))
    rotated = keys.rotate_key(database, hasher, team.owner, issued.view.id, grace_seconds=60)
    keys.revoke_key(database, team.admin, issued.view.id)
    with pytest.raises(Conflict):
        keys.revoke_key(database, team.admin, issued.view.id)
    with pytest.raises(InvalidInput):
        keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k", allowed_ips=["nope"]))
    rows = audit_rows(database)[before:]
    assert [(r.action, r.outcome, r.reason) for r in rows] == [
        ("credential.created", "ok", None),
        ("credential.rotated", "ok", None),
        ("credential.revoked", "ok", None),
        ("credential.revoked", "refused", "conflict"),
        ("credential.created", "refused", "invalid_request"),
    ]
    for row in rows:
        assert row.client_address == "198.51.100.7"
        assert row.occurred_at is not None
        text = repr(vars(row))
        assert issued.plaintext not in text and rotated.plaintext not in text
    assert rows[0].target_id == issued.view.id and rows[0].actor == team.admin.label
    assert rows[1].details["grace_seconds"] == 60
    with database.read() as session:
        assert session.scalars(select(Credential)).one().status == "revoked"
    assert len(keys.list_keys(database, team.admin, team.account_id)) == 1  # the refused create left nothing


def test_rotation_keeps_id_name_scopes_and_limits(database: Database, hasher: SecretHasher, team: Team) -> None:
    request = KeyRequest(name="k", scopes=["links:read"], allowed_ips=["10.0.0.0/8"], rate_limits=["7/minute"])
    issued = keys.create_key(database, hasher, team.admin, team.account_id, request)
    rotated = keys.rotate_key(database, hasher, team.admin, issued.view.id, grace_seconds=600)
    assert rotated.plaintext != issued.plaintext
    assert rotated.plaintext.startswith(f"nim_key_{issued.view.id}_")
    for field in ("id", "name", "scopes", "allowed_ips", "rate_limits", "created_at", "expires_at"):
        assert getattr(rotated.view, field) == getattr(issued.view, field)
    assert rotated.view.grace_until is not None
    assert timedelta(seconds=599) < rotated.view.grace_until - utcnow() <= timedelta(seconds=600)
    assert rotated.view.hint != issued.view.hint


@pytest.mark.parametrize("grace", [-1, 604801])
def test_grace_is_bounded(database: Database, hasher: SecretHasher, team: Team, grace: int) -> None:
    key_id = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k")).view.id
    with pytest.raises(InvalidInput, match="7 days"):
        keys.rotate_key(database, hasher, team.admin, key_id, grace_seconds=grace)


def test_revoked_and_expired_keys_cannot_be_rotated(database: Database, hasher: SecretHasher, team: Team) -> None:
    key_id = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k")).view.id
    keys.revoke_key(database, team.admin, key_id)
    with pytest.raises(Conflict, match="revoked"):
        keys.rotate_key(database, hasher, team.admin, key_id)
    expiring = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="e", expires_in=1))
    with database.write() as session:
        row = session.scalars(select(Credential).where(Credential.public_id == expiring.view.id)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert {v.id: v.status for v in keys.list_keys(database, team.admin, team.account_id)}[
        expiring.view.id
    ] == "expired"
    with pytest.raises(Conflict, match="expired"):
        keys.rotate_key(database, hasher, team.admin, expiring.view.id)


@pytest.mark.parametrize("bad_id", ["", "short", "x" * 12 + "!", "A" * 200, "../../etc", "ZZZZZZZZZZZZ"])
def test_malformed_or_unknown_ids_are_not_found(
    database: Database, hasher: SecretHasher, team: Team, bad_id: str
) -> None:
    with pytest.raises(NotFound):
        keys.revoke_key(database, team.admin, bad_id)
    with pytest.raises(NotFound):
        keys.rotate_key(database, hasher, team.admin, bad_id)


def test_unknown_scopes_are_refused(database: Database, hasher: SecretHasher, team: Team) -> None:
    with pytest.raises(InvalidInput, match="unknown scope"):
        keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k", scopes=["admin:all"]))


def test_keys_belong_to_the_workspace_not_their_creator(database: Database, hasher: SecretHasher, team: Team) -> None:
    key_id = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="k")).view.id
    keys.revoke_key(database, team.owner, key_id)  # another admin of the workspace manages it
    assert keys.list_keys(database, team.member, team.account_id)[0].status == "revoked"


def test_list_is_newest_first_and_has_the_contract_fields(database: Database, hasher: SecretHasher, team: Team) -> None:
    first = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="first")).view
    second = keys.create_key(database, hasher, team.admin, team.account_id, KeyRequest(name="second")).view
    listed = keys.list_keys(database, team.admin, team.account_id)
    assert [view.id for view in listed] == [second.id, first.id]
    contract = {"id", "name", "kind", "platform", "status", "created_at", "created_by", "last_used_at"}
    contract |= {"expires_at", "scopes", "allowed_ips", "hint"}
    assert contract <= set(listed[0].to_json())
