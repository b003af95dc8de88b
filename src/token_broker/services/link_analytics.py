"""Per-link analytics: total clicks, clicks per UTC day over a window, and the top referrer hosts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, String, func, literal_column, select
from sqlalchemy.orm import Session

from token_broker.services.link_fields import bounded
from token_broker.services.links import find_link
from token_broker.store.database import Database
from token_broker.store.link_models import (
    LinkClick,
)
from token_broker.store.models import utcnow

DEFAULT_ANALYTICS_DAYS = 30
MAX_ANALYTICS_DAYS = 365
TOP_REFERRERS = 5


@dataclass(frozen=True)
class DayClicks:
    day: date
    clicks: int


@dataclass(frozen=True)
class ReferrerClicks:
    referrer: str
    clicks: int


@dataclass(frozen=True)
class AnalyticsReport:
    link_id: str
    clicks: int  # ever
    days: list[DayClicks]  # oldest first, today last
    top_referrers: list[ReferrerClicks]


def _click_day(session: Session) -> ColumnElement[str]:
    """The UTC calendar day of a click, as YYYY-MM-DD, computed by the database."""
    moment = LinkClick.clicked_at
    if session.get_bind().dialect.name == "sqlite":  # stored as naive UTC text
        return func.date(moment, type_=String())
    # Literals rather than bound parameters, so that PostgreSQL sees the same expression in SELECT and GROUP BY.
    return func.to_char(func.timezone(literal_column("'UTC'"), moment), literal_column("'YYYY-MM-DD'"), type_=String())


def link_analytics(
    database: Database, workspace_id: int, link_id: str, days: int = DEFAULT_ANALYTICS_DAYS
) -> AnalyticsReport:
    """Clicks of a link: the total ever, per UTC day over the last `days` days (today included, oldest first, days
    without clicks as 0), and the top referrer hosts over those days."""
    days = bounded("days", days, 1, MAX_ANALYTICS_DAYS)
    today = utcnow().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    until = datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
    dates = [first + timedelta(days=offset) for offset in range(days)]
    with database.read() as session:
        row = find_link(session, workspace_id, link_id)
        in_window = (LinkClick.link_id == row.id, LinkClick.clicked_at >= since, LinkClick.clicked_at < until)
        day = _click_day(session)
        clicks = func.count(LinkClick.id)
        per_day = dict(session.execute(select(day, clicks).where(*in_window).group_by(day)).all())
        referrers = session.execute(
            select(LinkClick.referrer, clicks)
            .where(*in_window, LinkClick.referrer.is_not(None))
            .group_by(LinkClick.referrer)
            .order_by(clicks.desc(), LinkClick.referrer)
            .limit(TOP_REFERRERS)
        ).all()
    return AnalyticsReport(
        link_id=row.public_id,
        clicks=row.click_count,
        days=[DayClicks(day, per_day.get(day.isoformat(), 0)) for day in dates],
        top_referrers=[ReferrerClicks(referrer, count) for referrer, count in referrers if referrer is not None],
    )
