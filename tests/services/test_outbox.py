"""The outbox helper that every evented change calls: one row per event, one payload shape, written in the caller's
transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tests.support import Team
from token_broker.services import outbox
from token_broker.store.database import Database
from token_broker.store.link_models import OutboxEvent
from token_broker.store.models import Workspace


def workspace_of(session: Session, account_id: str) -> Workspace:
    return session.scalars(select(Workspace).where(Workspace.account_id == account_id)).one()


def stored_events(database: Database) -> list[OutboxEvent]:
    with database.read() as session:
        return list(session.scalars(select(OutboxEvent)))


def test_an_event_has_one_shape(database: Database, team: Team) -> None:
    with database.write() as session:
        added = outbox.add_event(
            session, workspace_of(session, team.account_id), "link.created", {"link": {"id": "x"}}, "4fQ2k9LmZx0a"
        )
    [row] = stored_events(database)
    assert row.id == added.id and row.source_credential_id == "4fQ2k9LmZx0a"
    assert row.public_id.startswith("evt_") and len(row.public_id) == 20
    assert row.payload == {
        "id": row.public_id,
        "type": "link.created",
        "created_at": row.created_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "account_id": team.account_id,
        "data": {"link": {"id": "x"}},
    }


def test_an_event_rolls_back_with_its_transaction(database: Database, team: Team) -> None:
    def fail_after_the_event() -> None:
        with database.write() as session:
            outbox.add_event(session, workspace_of(session, team.account_id), "link.deleted", {})
            session.flush()
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        fail_after_the_event()
    assert stored_events(database) == []


@pytest.mark.parametrize(
    ("event_type", "source"), [("link.exploded", None), ("LINK.CREATED", None), ("link.created", "operator")]
)
def test_unknown_types_and_sources_are_programming_errors(
    database: Database, team: Team, event_type: str, source: str | None
) -> None:
    with database.write() as session:
        workspace = workspace_of(session, team.account_id)
        with pytest.raises(ValueError, match=r"unknown event type|public id"):
            outbox.add_event(session, workspace, event_type, {}, source)
    assert stored_events(database) == []


def test_the_database_refuses_unknown_types_too(database: Database, team: Team) -> None:
    with database.write() as session:
        event = outbox.add_event(session, workspace_of(session, team.account_id), "link.clicked", {})
        event.type = "link.exploded"
        with pytest.raises(IntegrityError), session.begin_nested():
            session.flush()
    assert stored_events(database) == []
