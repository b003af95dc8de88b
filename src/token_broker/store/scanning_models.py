"""Secret-scanning reports already acted on, by the SHA-256 of their raw body, so that a replayed report is refused.

GitHub's protocol signs the body but carries no timestamp or nonce: a captured report verifies forever. Keeping the
digests of the reports accepted in the last days, in the store (so every instance and a restart see them), refuses
a replay inside that window; see docs/secret-scanning.md for why the window is enough.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from token_broker.store.models import Base


class ScanningReport(Base):
    __tablename__ = "secret_scanning_reports"
    __table_args__ = (Index("ix_secret_scanning_reports_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    body_digest: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime]
