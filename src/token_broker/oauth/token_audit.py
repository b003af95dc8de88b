"""The audit rows of token events, in the workspace of the connection they touch, written in the request's transaction.

`token.refreshed` (ok, or refused with its error code), with `details.replay` when a rotated-out refresh token was
presented again; `token.reused` when one came back after the replay window and ended its connection; `code.replayed`
when a redeemed code came back (ending its connection if still active); `token.revoked` for an RFC 7009 revocation.
Each row names the connection as its target, and the address the request came from.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, insert_row, record
from token_broker.services.refresh import Rotated
from token_broker.services.tokens import CodeReplay, Refreshed, Refused
from token_broker.store.lean_write import LeanWrite
from token_broker.store.oauth_models import Connection


def _entry(action: str, connection: Connection | None, **details: Any) -> AuditEntry:
    if connection is None:
        return AuditEntry(action=action, details=details)
    return AuditEntry(
        action=action,
        workspace_id=connection.workspace_id,
        target_id=connection.public_id,
        details={"platform": connection.platform, **details},
    )


def rotated_event(session: Session | LeanWrite, actor: Actor, rotated: Rotated) -> None:
    """`token.refreshed` of a refresh token rotated the common way (services.refresh), as one INSERT."""
    details = {"platform": rotated.platform, "replay": False}
    entry = AuditEntry("token.refreshed", rotated.workspace_id, rotated.tokens.connection_id, details)
    insert_row(session, actor, entry, "ok", None)


def refresh_event(session: Session, actor: Actor, outcome: Refreshed | Refused) -> None:
    if isinstance(outcome, Refreshed):
        record(session, actor, _entry("token.refreshed", outcome.connection, replay=outcome.replay), "ok", None)
        return
    if outcome.ended:
        entry = _entry("token.reused", outcome.connection, replay=True, connection_ended=True)
    else:
        entry = _entry("token.refreshed", outcome.connection, replay=outcome.replay)
    record(session, actor, entry, "refused", outcome.error.code)


def code_replay_event(session: Session, actor: Actor, replay: CodeReplay) -> None:
    entry = _entry("code.replayed", replay.connection, replay=True, connection_ended=replay.ended)
    record(session, actor, entry, "refused", "invalid_grant")


def revoke_event(session: Session, actor: Actor, connection: Connection) -> None:
    record(session, actor, _entry("token.revoked", connection), "ok", None)
