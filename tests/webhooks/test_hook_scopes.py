"""A hook delivers only what its owner may read: each event needs the scope that reads its data, checked when the hook
is made (403 insufficient_scope) and again before each delivery, against the owner's scopes at that moment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.live import live_server
from tests.makers import Keys
from tests.support import Team
from tests.webhooks.conftest import make_events, make_partner, run_worker
from tests.webhooks.receivers import receiver
from token_broker.config import Settings
from token_broker.credentials import SecretHasher
from token_broker.errors import InsufficientScope
from token_broker.scopes import EVENT_SCOPES, may_receive
from token_broker.services import deliveries, verification, webhook_subscriptions
from token_broker.services.verification import VerifiedCredential
from token_broker.store.database import Database
from token_broker.store.hook_models import HOOK_EVENTS, WebhookDelivery
from token_broker.store.link_models import LINK_EVENT_TYPES, OutboxEvent
from token_broker.store.models import AuditEvent, Credential, utcnow

TARGET = "http://127.0.0.1:9/hooks/in"  # never connected to: these hooks are only registered


def test_every_event_names_what_reading_it_takes() -> None:
    assert set(EVENT_SCOPES) == set(HOOK_EVENTS)
    assert {EVENT_SCOPES[event] for event in LINK_EVENT_TYPES} == {"links:read", "analytics:read"}
    assert not may_receive("credential.revoked", None, partner=True)
    assert may_receive("credential.revoked", None, partner=False)
    assert not may_receive("credential.revoked", ["links:read", "links:write", "analytics:read", "hooks:write"], False)
    assert not may_receive("link.unknown", None, partner=False)


def _key(make: Keys, hasher: SecretHasher, scopes: list[str] | None) -> tuple[str, VerifiedCredential]:
    issued = make.workspace_key(scopes=scopes, rate_limits=["100000/minute"])
    assert issued.plaintext is not None
    return issued.plaintext, verification.verify(make.database, hasher, issued.plaintext)


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        (["hooks:write"], set()),
        (["hooks:write", "links:read"], {"link.created", "link.updated", "link.deleted"}),
        (["hooks:write", "analytics:read"], {"link.clicked"}),
        (["hooks:write", "links:read", "analytics:read", "links:write"], set(LINK_EVENT_TYPES)),
        (None, set(HOOK_EVENTS)),
    ],
)
def test_subscribing_takes_the_events_read_scope(
    database_url: str, make: Keys, hasher: SecretHasher, team: Team, scopes: list[str] | None, allowed: set[str]
) -> None:
    plaintext, _ = _key(make, hasher, scopes)
    auth = {"Authorization": f"Bearer {plaintext}"}
    path = f"/v1/workspaces/{team.account_id}/hooks"
    with live_server(database_url, webhook_allow_hosts=("127.0.0.1",)) as live, live.client() as client:
        for event in HOOK_EVENTS:
            answer = client.post(path, headers=auth, json={"event": event, "target_url": TARGET})
            if event in allowed:
                assert answer.status_code == 201, (event, answer.text)
            else:
                assert answer.status_code == 403, (event, answer.text)
                assert answer.json()["error"] == "insufficient_scope"
                assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]
        listed = client.get(path, headers=auth).json()["data"]
    assert {hook["event"] for hook in listed} == allowed
    with make.database.read() as session:
        refusals = session.scalars(
            select(AuditEvent.reason).where(AuditEvent.action == "hook.created", AuditEvent.outcome == "refused")
        ).all()
    assert refusals == ["insufficient_scope"] * (len(HOOK_EVENTS) - len(allowed))


def test_a_partner_token_needs_the_scope_too(
    database: Database, settings: Settings, team: Team, hasher: SecretHasher
) -> None:
    partner = make_partner(database, hasher, team)  # granted links:read and hooks:write
    webhook_subscriptions.create_hook(database, partner.credential, "link.created", TARGET, settings)
    with pytest.raises(InsufficientScope):
        webhook_subscriptions.create_hook(database, partner.credential, "link.clicked", TARGET, settings)


def _set_scopes(database: Database, credential_id: str, scopes: list[str] | None) -> None:
    with database.write() as session:
        session.execute(update(Credential).where(Credential.public_id == credential_id).values(scopes=scopes))


def _fanned_out(database: Database) -> bool:
    with database.read() as session:
        return session.scalar(select(OutboxEvent.id).where(OutboxEvent.fanned_out_at.is_(None))) is None


def _deliveries(database: Database) -> list[tuple[str, str | None]]:
    with database.read() as session:
        rows = session.execute(select(WebhookDelivery.status, WebhookDelivery.last_error).order_by(WebhookDelivery.id))
        return [(status, error) for status, error in rows]


def test_no_delivery_is_sent_once_the_owner_lost_the_scope(
    database: Database, settings: Settings, make: Keys, hasher: SecretHasher
) -> None:
    _, owner = _key(make, hasher, ["hooks:write", "links:read"])
    with receiver() as target:
        hook = webhook_subscriptions.create_hook(database, owner, "link.created", target.url, settings)
        make_events(database, owner, 1)
        run_worker(database, settings, lambda: [status for status, _ in _deliveries(database)] == ["succeeded"])

        # Lost between the event and its claim: the queued delivery is cancelled, saying why, and nothing is sent.
        make_events(database, owner, 1)
        assert deliveries.fan_out(database, utcnow()) == 1
        _set_scopes(database, owner.id, ["hooks:write"])
        run_worker(database, settings, lambda: _deliveries(database)[-1][0] != "pending")
        status, error = _deliveries(database)[-1]
        assert status == "cancelled" and error is not None and error.startswith("insufficient_scope")

        # Lost before the event: no delivery is even queued.
        make_events(database, owner, 1)
        run_worker(database, settings, lambda: _fanned_out(database))
        assert len(_deliveries(database)) == 2
        assert len(target.received()) == 1

        # The hook stays: with the scope back, the next event is delivered.
        _set_scopes(database, owner.id, ["hooks:write", "links:read"])
        make_events(database, owner, 1)
        run_worker(database, settings, lambda: _deliveries(database)[-1][0] == "succeeded")
        assert len(target.received()) == 2
    [view] = webhook_subscriptions.list_hooks(database, owner)
    assert view.id == hook.view.id and view.status == "active"


def test_the_send_gate_checks_the_scope_again(
    database: Database, settings: Settings, make: Keys, hasher: SecretHasher, team: Team
) -> None:
    partner = make_partner(database, hasher, team)
    webhook_subscriptions.create_hook(database, partner.credential, "link.created", TARGET, settings)
    make_events(database, partner.credential, 1)
    now = utcnow()
    deliveries.fan_out(database, now)
    [job] = deliveries.claim(database, "worker-a", now, 10, timedelta(seconds=60))
    assert deliveries.still_deliverable(database, job, utcnow())
    _set_scopes(database, partner.credential.id, ["hooks:write"])  # as a refresh asking for less scope leaves it
    assert not deliveries.still_deliverable(database, job, utcnow())
    with deliveries.send_gate(database, job, utcnow()) as allowed:
        assert not allowed
