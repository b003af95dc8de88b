"""Ending a user's dashboard sessions on the server.

Each user has a session generation, carried in the signed session cookie and compared on every dashboard and admin
API request. Raising it ends every session issued before, wherever its cookie was copied: signing out, a new password,
being removed from a workspace or demoted all raise it. One number per user, so no session table to grow or prune;
the price is that signing out ends the user's sessions in every browser, not only this one.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from token_broker.store.database import Database
from token_broker.store.models import User


def end_sessions_in(session: Session, user_id: int) -> int:
    """Raise the user's generation inside the caller's transaction; the new generation (0 for no such user)."""
    generation = session.scalar(
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1)
        .returning(User.session_generation)
    )
    return int(generation or 0)


def end_sessions(database: Database, user_id: int) -> int:
    with database.write() as session:
        return end_sessions_in(session, user_id)
