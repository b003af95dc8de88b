"""Webhooks to partners: hooks, one delivery per (outbox event, hook), and the log of every delivery attempt.

- A hook belongs to the credential that created it: for a partner install token, to that token's connection (so that
  it outlives the token's refreshes and dies with the connection); for a workspace API key, to the key.
- Its signing secret must be readable by the server to sign deliveries, so it cannot be hashed like a credential: it
  is kept encrypted (AES-256-GCM under a key derived from TOKEN_BROKER_SECRET_KEY, bound to the hook's public id).
- An outbox event is fanned out once: the worker that marks its `fanned_out_at` (in `outbox_events`) inserts its
  deliveries in the same transaction.
- A delivery's `next_attempt_at` is when it is due: for a pending delivery, its next attempt; for one being
  delivered, the end of the claiming worker's lease, after which another worker may take it over.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from token_broker.store.link_models import EVENT_TYPES
from token_broker.store.models import Base, _in

HOOK_EVENTS = EVENT_TYPES
HOOK_STATUSES = ("active", "disabled", "deleted")
# Why a hook stopped: its owner deleted it, the receiver answered 410, it failed for days, its connection or key
# ended, or its secret can no longer be read (TOKEN_BROKER_SECRET_KEY changed).
HOOK_END_REASONS = ("deleted", "gone", "failing", "connection_ended", "credential_revoked", "secret_unreadable")
DELIVERY_STATUSES = ("pending", "delivering", "succeeded", "failed", "cancelled")
FINISHED_DELIVERY_STATUSES = ("succeeded", "failed", "cancelled")
# Deliveries still in the queue, as SQL: written out (not bound) so that the planner matches the partial index on it.
QUEUED_SQL = "status IN ('pending', 'delivering')"
ATTEMPT_OUTCOMES = ("succeeded", "retry", "failed", "gone", "refused")
MAX_TARGET_URL_LENGTH = 2048
MAX_ERROR_LENGTH = 200


class Hook(Base):
    __tablename__ = "hooks"
    __table_args__ = (
        CheckConstraint(_in("status", HOOK_STATUSES), name="status_known"),
        CheckConstraint(_in("end_reason", HOOK_END_REASONS), name="end_reason_known"),
        CheckConstraint("(status = 'active') = (ended_at IS NULL)", name="ended_has_time"),
        CheckConstraint("(ended_at IS NULL) = (end_reason IS NULL)", name="ended_has_reason"),
        Index("ix_hooks_workspace_status_event", "workspace_id", "status", "event"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    credential_id: Mapped[int] = mapped_column(ForeignKey("credentials.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    target_url: Mapped[str] = mapped_column(String(MAX_TARGET_URL_LENGTH))
    secret_ciphertext: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))


class WebhookDelivery(Base):
    """One event for one hook: pending until delivered, given up on, or cancelled with its hook."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "hook_id", name="uq_webhook_deliveries_event_hook"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status_known"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint("(status = 'delivering') = (claimed_by IS NOT NULL)", name="delivering_is_claimed"),
        CheckConstraint(
            f"({_in('status', FINISHED_DELIVERY_STATUSES)}) = (finished_at IS NOT NULL)", name="finished_has_time"
        ),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        # The queue in claim order, so that a claim reads the first deliveries due and stops: without it every claim
        # sorted the whole backlog.
        Index(
            "ix_webhook_deliveries_queue",
            "next_attempt_at",
            "id",
            sqlite_where=text(QUEUED_SQL),
            postgresql_where=text(QUEUED_SQL),
        ),
        Index("ix_webhook_deliveries_hook_id_id", "hook_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"))
    hook_id: Mapped[int] = mapped_column(ForeignKey("hooks.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(MAX_ERROR_LENGTH))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """The delivery log: one row per attempt made, with its answer or the error, never a secret or a body."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        CheckConstraint(_in("outcome", ATTEMPT_OUTCOMES), name="outcome_known"),
        CheckConstraint("duration_ms >= 0", name="duration_not_negative"),
        Index("ix_webhook_attempts_hook_id_id", "hook_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    hook_id: Mapped[int] = mapped_column(ForeignKey("hooks.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None]
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(MAX_ERROR_LENGTH))
