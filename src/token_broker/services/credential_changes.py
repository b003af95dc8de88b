"""Credential change notes: written beside each rotation, revocation or disconnect, read by every instance.

The instance that commits the change hears it first, from the store's after-commit hook (`store.database`), before
its handler answers; the others hear it through NOTIFY or the polled notes.

On PostgreSQL each note's INSERT also sends `NOTIFY token_broker_changes, '<credential id>'` (a trigger on the notes,
migration 0011: no statement of its own), which PostgreSQL delivers to every listening instance when (and only if)
the transaction commits; the notes stay the fallback for a notification that is lost (a listener reconnecting, a
proxy that drops LISTEN, an older release's store without the trigger during a rolling deploy).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.orm import Session

from token_broker.store.database import Database, changed_credential, table_of
from token_broker.store.models import CredentialChange, utcnow

# Ids are taken in one order and may commit in another; asking again for the ids up to this many below the newest seen
# that were not there yet catches a note whose transaction committed late.
OVERLAP_IDS = 500
# With more ids than this missing (a store pruned while quiet, many rollbacks), the whole overlap is read again instead.
MOST_MISSING_ASKED = 50
_NOTE = insert(table_of(CredentialChange)).inline()  # the new id is not wanted: no RETURNING to fetch
# A client's note carries this mark and a digest of its client id, in the column's 12 characters; credentials' public
# ids are base62, so the two never collide. Two clients sharing a digest only forget each other once too often.
CLIENT_MARK = "~"


def note_change(session: Session, credential_id: str) -> None:
    session.execute(_NOTE, {"credential_id": credential_id, "changed_at": utcnow()})
    changed_credential(session, credential_id)  # this instance hears it at commit, before the answer leaves


def client_change_id(client_id: str) -> str:
    digest = hashlib.sha256(client_id.encode()).digest()
    return CLIENT_MARK + base64.urlsafe_b64encode(digest).decode()[:11]


def note_client_change(session: Session, client_id: str) -> None:
    """A client's secret was rotated or the client revoked: every instance forgets its remembered authentications,
    on which introspection answers without a transaction (oauth/fast_introspection.py)."""
    note_change(session, client_change_id(client_id))


def newest_change(database: Database) -> int:
    with database.read() as session:
        return session.scalar(select(func.max(CredentialChange.id))) or 0


def changes_since(database: Database, after_id: int, missing: Sequence[int] = ()) -> list[tuple[int, str]]:
    """(note id, credential id) pairs, oldest first: the notes with ids above after_id, and those of `missing` (ids
    at or below it that earlier reads did not find: notes of transactions still open then). With more than
    MOST_MISSING_ASKED of those, every note above after_id - OVERLAP_IDS."""
    wanted = CredentialChange.id > after_id
    if len(missing) > MOST_MISSING_ASKED:
        wanted = CredentialChange.id > after_id - OVERLAP_IDS
    elif missing:
        wanted = or_(wanted, CredentialChange.id.in_(missing))
    with database.read() as session:
        rows = session.execute(
            select(CredentialChange.id, CredentialChange.credential_id).where(wanted).order_by(CredentialChange.id)
        )
        return [(note_id, credential_id) for note_id, credential_id in rows]


def prune_changes(database: Database, older_than: datetime) -> None:
    """Drop notes older than `older_than`, always keeping the newest so that ids keep rising on every database."""
    with database.write() as session:
        newest = session.scalar(select(func.max(CredentialChange.id))) or 0
        session.execute(
            delete(CredentialChange).where(CredentialChange.changed_at < older_than, CredentialChange.id < newest)
        )
