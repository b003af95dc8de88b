"""The change-note poll asks for the notes above the newest it saw and for the ids below it that no read found yet
(a note whose transaction committed after a later one's), not for the whole overlap every time; with many ids
missing it reads the whole overlap as before. Either way a note that committed late is found."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert

from token_broker.credentials import SecretHasher
from token_broker.guard.change_watcher import ChangeWatcher
from token_broker.guard.guard import Guard
from token_broker.services import credential_changes
from token_broker.store.database import Database
from token_broker.store.models import CredentialChange, utcnow


class Heard:
    def __init__(self) -> None:
        self.changes: list[str] = []

    def forget_change(self, note_id: str) -> None:
        self.changes.append(note_id)

    def forget_everything(self) -> None:
        raise AssertionError("the store answered")


def add_note(database: Database, note_id: int, credential_id: str) -> None:
    """A note with the id its transaction took, committed now (as a transaction that took it earlier and was slow)."""
    with database.write() as session:
        session.execute(
            insert(CredentialChange), {"id": note_id, "credential_id": credential_id, "changed_at": utcnow()}
        )


@pytest.fixture
def watched(database: Database, hasher: SecretHasher) -> tuple[ChangeWatcher, Heard]:
    add_note(database, 1, "before-start")
    heard = Heard()
    watcher = ChangeWatcher(Guard(database, hasher), database, (heard,))
    watcher.start_point()
    watcher.poll()  # the first poll reads the overlap below the start: nothing cached can be older than it
    heard.changes.clear()
    return watcher, heard


def reads(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    answers: list[list[Any]] = []
    read = credential_changes.changes_since

    def spied(*args: Any) -> list[tuple[int, str]]:
        answers.append(read(*args))
        return answers[-1]

    monkeypatch.setattr(credential_changes, "changes_since", spied)
    return answers


def test_a_note_committed_late_is_found_and_nothing_is_read_twice(
    database: Database, watched: tuple[ChangeWatcher, Heard], monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher, heard = watched
    answers = reads(monkeypatch)
    add_note(database, 3, "third")  # id 2 taken by a transaction still open
    assert watcher.poll() == 1
    assert watcher.poll() == 0
    add_note(database, 2, "second")  # it commits, after 3
    add_note(database, 4, "fourth")
    assert watcher.poll() == 2
    assert heard.changes == ["third", "second", "fourth"]
    assert [len(answer) for answer in answers] == [1, 0, 2]  # only the new notes and the one missing


def test_with_many_ids_missing_the_whole_overlap_is_read(
    database: Database, watched: tuple[ChangeWatcher, Heard], monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher, heard = watched
    answers = reads(monkeypatch)
    last = 2 + credential_changes.MOST_MISSING_ASKED + 5
    add_note(database, last, "last")
    assert watcher.poll() == 1
    add_note(database, 7, "late")
    assert watcher.poll() == 1
    assert heard.changes == ["last", "late"]
    assert [len(answer) for answer in answers] == [1, 3]  # the overlap read again: 1, 7 and the last
