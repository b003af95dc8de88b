"""PostgreSQL: every credential change note NOTIFYs the instances from a trigger, in the transaction that writes it,
instead of a `SELECT pg_notify(...)` statement the application sent after each note

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The channel the instances LISTEN on (store/change_listener.py), written out: a migration must not change later.
CHANNEL = "token_broker_changes"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no NOTIFY: its instances read the change notes alone
    op.execute(
        "CREATE FUNCTION token_broker_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', NEW.credential_id); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER credential_changes_notify AFTER INSERT ON credential_changes "
        "FOR EACH ROW EXECUTE FUNCTION token_broker_notify_change()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER credential_changes_notify ON credential_changes")
    op.execute("DROP FUNCTION token_broker_notify_change()")
