"""Figures about the store for the metrics: how much webhook work is waiting. Read-only, two indexed counts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from token_broker.store.database import Database
from token_broker.store.hook_models import WebhookDelivery
from token_broker.store.link_models import OutboxEvent


@dataclass(frozen=True)
class QueueDepth:
    pending_deliveries: int  # queued or in flight (pending, delivering)
    unfanned_events: int  # outbox events not yet turned into deliveries


def queue_depth(database: Database) -> QueueDepth:
    with database.read() as session:
        pending = session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status.in_(("pending", "delivering")))
        )
        unfanned = session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.fanned_out_at.is_(None))
        )
    return QueueDepth(pending_deliveries=pending or 0, unfanned_events=unfanned or 0)
