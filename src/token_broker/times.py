"""Times on the wire: RFC 3339 UTC strings."""

from __future__ import annotations

from datetime import datetime


def rfc3339(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")
