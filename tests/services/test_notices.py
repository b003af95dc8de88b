"""Admins hear about their credentials and connections: events in the outbox, in the change's transaction, for the
dashboard and for admin hooks; platforms may not subscribe to them."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.makers import Keys
from tests.support import Team
from token_broker.config import Settings
from token_broker.errors import InsufficientScope, InvalidInput
from token_broker.services import admin_notices, connections, deliveries, keys, verification, webhook_subscriptions
from token_broker.store.database import Database
from token_broker.store.hook_models import WebhookDelivery
from token_broker.store.models import Credential, utcnow

SETTINGS = replace(Settings.from_env({}), secret_key="k" * 40, webhook_allow_hosts=("127.0.0.1",))


def types(database: Database, account_id: str) -> list[str]:
    return [notice.type for notice in admin_notices.recent_notices(database, account_id)]


def test_rotate_revoke_and_disconnect_tell_the_admins(database: Database, make: Keys, team: Team) -> None:
    issued = make.workspace_key()
    keys.rotate_key(database, make.hasher, team.admin, issued.view.id, grace_seconds=0)
    keys.revoke_key(database, team.admin, issued.view.id)
    make.partner_token()
    [connection] = connections.list_connections(database, team.admin, team.account_id)
    connections.disconnect(database, team.admin, connection.id)
    assert types(database, team.account_id) == ["integration.disconnected", "credential.revoked", "credential.rotated"]
    [ended, revoked, rotated] = admin_notices.recent_notices(database, team.account_id)
    assert ended.data["connection"] | {"disconnected_at": None} == {
        "id": connection.id, "platform": "zapier", "reason": "disconnected", "disconnected_by": team.admin.label,
        "disconnected_at": None}  # fmt: skip
    assert revoked.data["credential"]["id"] == issued.view.id and revoked.data["credential"]["status"] == "revoked"
    assert "key" not in rotated.data["credential"]  # never the plaintext
    assert issued.plaintext not in str(rotated.data)


def test_a_refused_change_tells_nobody(database: Database, make: Keys, team: Team) -> None:
    issued = make.workspace_key()
    with pytest.raises(Exception, match="role"):
        keys.revoke_key(database, team.viewer, issued.view.id)
    assert types(database, team.account_id) == []


def test_keys_about_to_expire_are_announced_once(database: Database, make: Keys, team: Team) -> None:
    soon = make.workspace_key(expires_in=3600)
    make.workspace_key(expires_in=30 * 86400)  # not yet
    make.workspace_key()  # never expires
    now = utcnow()
    assert admin_notices.record_expiring(database, now) == 1
    assert admin_notices.record_expiring(database, now + timedelta(minutes=5)) == 0
    [notice] = admin_notices.recent_notices(database, team.account_id)
    assert notice.type == "credential.expiring" and notice.data["credential"]["id"] == soon.view.id
    with database.write() as session:  # an expired key is not announced any more
        session.execute(update(Credential).values(expiring_notified_at=None))
    assert admin_notices.record_expiring(database, now + timedelta(days=1)) == 0


def test_admin_hooks_receive_admin_events_and_platforms_cannot_subscribe(
    database: Database, make: Keys, team: Team
) -> None:
    admin_key = make.workspace_key()  # admin notices need a key with full access
    assert admin_key.plaintext is not None
    credential = verification.verify(database, make.hasher, admin_key.plaintext)
    webhook_subscriptions.create_hook(database, credential, "credential.revoked", "http://127.0.0.1:9/admin", SETTINGS)
    scoped = make.workspace_key(scopes=["hooks:write", "links:read", "links:write", "analytics:read"])
    assert scoped.plaintext is not None
    narrow = verification.verify(database, make.hasher, scoped.plaintext)
    with pytest.raises(InsufficientScope):
        webhook_subscriptions.create_hook(database, narrow, "credential.revoked", "http://127.0.0.1:9/admin", SETTINGS)
    partner = verification.verify(database, make.hasher, make.partner_token(scopes=["hooks:write"]))
    with pytest.raises(InvalidInput, match="event"):
        webhook_subscriptions.create_hook(database, partner, "credential.revoked", "http://127.0.0.1:9/p", SETTINGS)
    other = make.workspace_key()
    keys.revoke_key(database, team.admin, other.view.id)
    assert deliveries.fan_out(database, utcnow()) >= 1
    with database.read() as session:
        assert len(session.scalars(select(WebhookDelivery)).all()) == 1
