"""How a credential's secrets stop, written once for every path that stops them (a revocation, a disconnect, a leak
report): the row changes, its version moves on and the change is noted, so every instance forgets what it cached."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from token_broker.services.credential_changes import note_change
from token_broker.store.models import Credential


def end_grace(session: Session, row: Credential) -> None:
    """The rotated-out secret stops now; the current one keeps working. The caller holds the row's lock."""
    row.previous_secret_hash = None
    row.previous_valid_until = None
    row.version += 1
    note_change(session, row.public_id)


def revoke_credential(session: Session, row: Credential, by: str, now: datetime) -> None:
    """Every secret of the credential stops, the rotated-out one too; a row already revoked keeps who revoked it and
    when. The caller holds the row's lock."""
    if row.status != "revoked":
        row.status = "revoked"
        row.revoked_at = now
        row.revoked_by = by
    end_grace(session, row)
