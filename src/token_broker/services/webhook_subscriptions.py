"""Hooks: partners subscribe to a workspace's events with a target URL; the delivery worker sends them there.

- A hook belongs to its owner: the connection of the partner install token that created it (so it survives the
  token's refreshes and ends with the connection), or the workspace API key that created it. An owner sees, and can
  delete, only its own hooks; another owner's hook in the same workspace is "not found", like a hook that does not
  exist.
- The target URL is checked (https, public addresses only, see `token_broker.net.ssrf`) when the hook is
  registered, and again at every delivery against the address its name then resolves to.
- The signing secret is shown once, in the answer to the creation, and kept sealed (`net.signing`).
- Each event needs the scope that reads its data (`scopes.EVENT_SCOPES`: `links:read` for link events,
  `analytics:read` for clicks, full access for admin notices): checked at subscription (403 insufficient_scope) and
  again by the delivery worker against the owner's scopes at that moment (`deliveries`).
- Creation and deletion are audited ("hook.created", "hook.deleted"), refusals included, with the credential as actor.
  The audit row names the target's host, never its path (a partner's target URL often carries a token).
- Disconnecting a connection or revoking a key disables its hooks and cancels their queued deliveries in the same
  transaction: `disable_hooks_for_connection` and `disable_hooks_for_credential` run in the caller's session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session

from token_broker.config import Settings
from token_broker.errors import (
    Conflict,
    InsufficientScope,
    InvalidCredential,
    InvalidInput,
    NotFound,
    ReconnectRequired,
)
from token_broker.net import signing, ssrf
from token_broker.scopes import event_scope_needed, may_receive
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, run_audited
from token_broker.services.verification import INVALID_MESSAGE, RECONNECT_MESSAGE, VerifiedCredential
from token_broker.services.workspaces import new_public_id
from token_broker.store.database import Database
from token_broker.store.hook_models import HOOK_EVENTS, Hook, WebhookAttempt, WebhookDelivery
from token_broker.store.link_models import LINK_EVENT_TYPES, OutboxEvent
from token_broker.store.models import Credential, utcnow
from token_broker.store.oauth_models import Connection

HOOK_ID_PREFIX = "hook_"
HOOK_ID_LENGTH = 16
MAX_HOOKS_PER_OWNER = 100
OPEN_DELIVERY_STATUSES = ("pending", "delivering")
_HOOK_ID = re.compile(rf"{HOOK_ID_PREFIX}[0-9A-Za-z]{{{HOOK_ID_LENGTH}}}")


@dataclass(frozen=True)
class HookView:
    """A hook as its owner sees it, as plain data (the API's body is `wire.Hook`): never its secret."""

    id: str
    event: str
    target_url: str
    status: str
    status_reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Hook) -> HookView:
        return cls(
            id=row.public_id,
            event=row.event,
            target_url=row.target_url,
            status=row.status,
            status_reason=row.end_reason,
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class CreatedHook:
    """A new hook with its signing secret: returned once, at creation, and never again."""

    view: HookView
    secret: str

    def __repr__(self) -> str:
        return f"CreatedHook(id={self.view.id!r})"


@dataclass(frozen=True)
class AttemptView:
    """One line of a hook's delivery log."""

    event_id: str
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    outcome: str
    error: str | None


def validate_event(value: object, partner: bool = False) -> str:
    """A known event; the admin events (credentials and connections) only for workspace API keys' hooks."""
    events = LINK_EVENT_TYPES if partner else HOOK_EVENTS
    if not isinstance(value, str) or value not in events:
        raise InvalidInput("event", f"event must be one of {', '.join(events)}.")
    return value


def _owner(session: Session, credential: VerifiedCredential, lock: bool) -> Credential:
    """The credential's row, still usable; with `lock`, its connection's row (or the key's row) locked first, so that
    a hook is never added to an owner that a concurrent disconnect or revocation is ending."""
    row = session.scalar(select(Credential).where(Credential.public_id == credential.id))
    if row is None or row.workspace_id != credential.workspace_id:
        raise InvalidCredential(INVALID_MESSAGE)
    if row.connection_id is not None:
        connection_query = select(Connection).where(Connection.id == row.connection_id)
        connection = session.scalars(connection_query.with_for_update() if lock else connection_query).one()
        if connection.status != "active" or row.status != "active":
            raise ReconnectRequired(RECONNECT_MESSAGE)
        return row
    if lock:
        locked = select(Credential).where(Credential.id == row.id).with_for_update()
        row = session.scalars(locked.execution_options(populate_existing=True)).one()
    if row.status != "active":
        raise InvalidCredential(INVALID_MESSAGE)
    return row


def _owned_by(owner: Credential) -> ColumnElement[bool]:
    if owner.connection_id is not None:
        return Hook.connection_id == owner.connection_id
    return and_(Hook.credential_id == owner.id, Hook.connection_id.is_(None))


def create_hook(
    database: Database,
    credential: VerifiedCredential,
    event: object,
    target_url: object,
    settings: Settings,
    client_address: str | None = None,
) -> CreatedHook:
    """A new hook of the credential's owner, with its secret (shown once). The target's name is resolved before the
    write transaction opens, so no lock is held through DNS; a refusal is audited like any other."""
    if not settings.secret_key:
        raise ValueError("create_hook needs settings with a secret key (Settings.with_secret_key)")
    refusal: InvalidInput | InsufficientScope | None = None
    target: ssrf.Target | None = None
    try:
        event = validate_event(event, partner=credential.platform is not None)
        if not may_receive(event, credential.scopes, partner=credential.platform is not None):
            raise InsufficientScope(
                f"Receiving {event} events takes {event_scope_needed(event)}, which this credential does not have."
            )
        target = ssrf.check_target(target_url, settings.webhook_allow_hosts)
    except (InvalidInput, InsufficientScope) as error:
        refusal = error
    except ssrf.TargetRefused as error:
        refusal = InvalidInput("target_url", str(error))
    public_id = new_public_id(HOOK_ID_PREFIX, HOOK_ID_LENGTH)
    secret = signing.new_secret()
    sealed = signing.seal(settings.secret_key, public_id, secret)

    def work(session: Session, entry: AuditEntry) -> CreatedHook:
        entry.workspace_id = credential.workspace_id
        entry.target_id = public_id
        if target is not None:
            entry.details = {"event": str(event)[:64], "target_host": target.host}
        if refusal is not None:
            raise refusal
        assert target is not None and isinstance(event, str)
        owner = _owner(session, credential, lock=True)
        count = session.scalar(select(func.count()).select_from(Hook).where(_owned_by(owner), Hook.status != "deleted"))
        if (count or 0) >= MAX_HOOKS_PER_OWNER:
            raise Conflict(
                f"This {'connection' if owner.connection_id else 'key'} already has {MAX_HOOKS_PER_OWNER} hooks: "
                "delete some before adding more."
            )
        row = Hook(
            public_id=public_id,
            workspace_id=credential.workspace_id,
            credential_id=owner.id,
            connection_id=owner.connection_id,
            event=event,
            target_url=target.url,
            secret_ciphertext=sealed,
            status="active",
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return CreatedHook(view=HookView.of(row), secret=secret)

    return run_audited(database, Actor.credential(credential.id, client_address), "hook.created", work)


def list_hooks(database: Database, credential: VerifiedCredential) -> list[HookView]:
    """The owner's hooks, active and disabled (deleted ones are gone), newest first."""
    with database.read() as session:
        owner = _owner(session, credential, lock=False)
        rows = session.scalars(
            select(Hook).where(_owned_by(owner), Hook.status != "deleted").order_by(Hook.id.desc())
        ).all()
        return [HookView.of(row) for row in rows]


def get_hook(database: Database, credential: VerifiedCredential, hook_id: str) -> HookView:
    """One of the owner's hooks, active or disabled: lets a platform confirm that the hook it saved still exists
    (n8n's checkExists) without listing the others. Another owner's hook is "not found", like a missing one."""
    if _HOOK_ID.fullmatch(hook_id) is None:
        raise _not_found(hook_id)
    with database.read() as session:
        owner = _owner(session, credential, lock=False)
        row = session.scalar(
            select(Hook).where(
                Hook.public_id == hook_id,
                Hook.workspace_id == credential.workspace_id,
                _owned_by(owner),
                Hook.status != "deleted",
            )
        )
        if row is None:
            raise _not_found(hook_id)
        return HookView.of(row)


def _not_found(hook_id: str) -> NotFound:
    shown = repr(hook_id) if _HOOK_ID.fullmatch(hook_id) else "with that id"
    return NotFound(f"No hook {shown} belongs to this credential.")


def delete_hook(
    database: Database, credential: VerifiedCredential, hook_id: str, client_address: str | None = None
) -> None:
    """Delete one of the owner's hooks: it is never delivered to again and its queued deliveries are cancelled."""

    def work(session: Session, entry: AuditEntry) -> None:
        entry.workspace_id = credential.workspace_id
        if _HOOK_ID.fullmatch(hook_id) is None:  # never put arbitrary path bytes in a query or an audit row
            raise _not_found(hook_id)
        entry.target_id = hook_id
        owner = _owner(session, credential, lock=False)
        row = session.scalar(
            select(Hook)
            .where(Hook.public_id == hook_id, Hook.workspace_id == credential.workspace_id, _owned_by(owner))
            .where(Hook.status != "deleted")
            .with_for_update()
        )
        if row is None:
            raise _not_found(hook_id)
        now = utcnow()
        if row.status == "active":
            row.ended_at = now
        row.status, row.end_reason = "deleted", "deleted"
        session.flush()
        cancel_deliveries(session, [row.id], now)

    run_audited(database, Actor.credential(credential.id, client_address), "hook.deleted", work)


def hook_log(database: Database, workspace_id: int, hook_id: str, limit: int = 50) -> list[AttemptView]:
    """A hook's delivery log, newest attempt first: for the dashboard and operators."""
    if _HOOK_ID.fullmatch(hook_id) is None:
        raise _not_found(hook_id)
    with database.read() as session:
        hook = session.scalar(select(Hook).where(Hook.public_id == hook_id, Hook.workspace_id == workspace_id))
        if hook is None:
            raise _not_found(hook_id)
        rows = session.execute(
            select(WebhookAttempt, OutboxEvent.public_id)
            .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
            .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
            .where(WebhookAttempt.hook_id == hook.id)
            .order_by(WebhookAttempt.id.desc())
            .limit(max(1, min(limit, 500)))
        ).all()
        return [
            AttemptView(
                event_id=event_id,
                attempt=attempt.attempt,
                started_at=attempt.started_at,
                duration_ms=attempt.duration_ms,
                status_code=attempt.status_code,
                outcome=attempt.outcome,
                error=attempt.error,
            )
            for attempt, event_id in rows
        ]


def cancel_deliveries(session: Session, hook_ids: list[int], now: datetime) -> int:
    """Cancel the queued (and in-flight) deliveries of these hooks in the caller's transaction."""
    if not hook_ids:
        return 0
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.hook_id.in_(hook_ids), WebhookDelivery.status.in_(OPEN_DELIVERY_STATUSES))
        .values(status="cancelled", claimed_by=None, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _disable(session: Session, condition: ColumnElement[bool], reason: str, now: datetime) -> int:
    hook_ids = list(session.scalars(select(Hook.id).where(condition).order_by(Hook.id)))
    if not hook_ids:
        return 0
    disabled = session.execute(
        update(Hook)
        .where(Hook.id.in_(hook_ids), Hook.status == "active")
        .values(status="disabled", ended_at=now, end_reason=reason)
        .execution_options(synchronize_session=False)
    )
    cancel_deliveries(session, hook_ids, now)
    return int(disabled.rowcount or 0)  # type: ignore[attr-defined]


def disable_hooks_for_connection(session: Session, connection_id: int, now: datetime) -> int:
    """In the caller's transaction (the disconnect's): disable the connection's hooks (reason `connection_ended`) and
    cancel their queued deliveries. Returns how many hooks were disabled. Once this commits, no delivery attempt to
    them starts: the worker claims a delivery only in a transaction that sees its hook active and its owner alive."""
    return _disable(session, Hook.connection_id == connection_id, "connection_ended", now)


def disable_hooks_for_credential(session: Session, credential_id: int, now: datetime) -> int:
    """In the caller's transaction (the revocation's): disable the hooks this credential (`credentials.id`) created
    (reason `credential_revoked`) and cancel their queued deliveries. Returns how many hooks were disabled."""
    return _disable(session, Hook.credential_id == credential_id, "credential_revoked", now)
