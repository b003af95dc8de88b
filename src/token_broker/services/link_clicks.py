"""The public redirect's side of links: find a slug's destination, and write its clicks in batches (with the
referrer's host and a cleaned user agent, never the visitor's address; `click_batches` gathers them). Past its
`expires_at` a link answers expired and counts nothing.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select

from token_broker.services import outbox
from token_broker.services.link_fields import REFERRER_HOST_PATTERN, SLUG_PATTERN
from token_broker.services.links import LinkView, link_event
from token_broker.store.database import Database
from token_broker.store.link_models import (
    DEFAULT_DOMAIN,
    MAX_DESTINATION_LENGTH,
    MAX_REFERRER_LENGTH,
    MAX_USER_AGENT_LENGTH,
    Link,
    LinkClick,
)
from token_broker.store.models import Workspace, utcnow
from token_broker.times import rfc3339


def referrer_host(referrer: object) -> str | None:
    """The host of a Referer header (given whole, or already reduced to its host), lowercase, or None when it is not
    a plain host name or address: the path and query are never kept."""
    if not isinstance(referrer, str) or not referrer:
        return None
    value = referrer[:MAX_DESTINATION_LENGTH].strip()
    if "://" not in value:
        host: str | None = value.lower()
    else:
        try:
            host = urlsplit(value).hostname
        except ValueError:
            return None
    if not host or len(host) > MAX_REFERRER_LENGTH or REFERRER_HOST_PATTERN.fullmatch(host) is None:
        return None
    return host


def clean_user_agent(user_agent: object) -> str | None:
    """The user agent without control or unencodable characters, at most 300 characters, or None."""
    if not isinstance(user_agent, str):
        return None
    kept = "".join(c for c in user_agent[: MAX_USER_AGENT_LENGTH * 2] if unicodedata.category(c)[0] != "C")
    return kept.strip()[:MAX_USER_AGENT_LENGTH] or None


@dataclass(frozen=True)
class Visit:
    """What the redirect does for a slug: send the visitor on (link id, destination), or answer expired or missing."""

    outcome: str  # "found", "expired" or "missing"
    link_id: int | None = None
    destination: str | None = None


MISSING = Visit("missing")


@dataclass(frozen=True)
class Click:
    """One visit of a short link, noted by the redirect and written later with others (`record_clicks`)."""

    link_id: int  # links.id
    clicked_at: datetime
    referrer: str | None  # a host, already cleaned by referrer_host
    user_agent: str | None  # already cleaned by clean_user_agent


def find_destination(database: Database, slug: str) -> Visit:
    """Where the slug on the default domain sends a visitor, read without a write lock: found (with the link's id and
    destination), expired, or missing. Never raises for any slug."""
    if not isinstance(slug, str) or SLUG_PATTERN.fullmatch(slug) is None:
        return MISSING
    with database.read() as session:  # a miss takes no write lock: scanning for slugs does not queue writers
        found = session.execute(
            select(Link.id, Link.destination, Link.expires_at).where(
                Link.domain == DEFAULT_DOMAIN, Link.slug_key == slug.lower()
            )
        ).first()
    if found is None:
        return MISSING
    if found.expires_at is not None and found.expires_at <= utcnow():
        return Visit("expired")
    return Visit("found", found.id, found.destination)


def new_click(link_id: int, referrer: object, user_agent: object, when: datetime | None = None) -> Click:
    return Click(link_id, when or utcnow(), referrer_host(referrer), clean_user_agent(user_agent))


def record_clicks(database: Database, clicks: list[Click]) -> int:
    """Write a batch of clicks in one transaction: each click's row, its link's count, and one `link.clicked` event
    per click (its payload's `link.clicks` counts up through the batch, as if the clicks had been written one by one).
    Clicks of links deleted since are dropped. Returns how many clicks were written."""
    if not clicks:
        return 0
    with database.write() as session:
        ids = sorted({click.link_id for click in clicks})
        locked = select(Link).where(Link.id.in_(ids)).order_by(Link.id).with_for_update()
        rows = {row.id: row for row in session.scalars(locked)}
        workspaces = {
            row.id: row
            for row in session.scalars(
                select(Workspace).where(Workspace.id.in_({r.workspace_id for r in rows.values()}))
            )
        }
        written = 0
        for click in clicks:
            row = rows.get(click.link_id)
            if row is None:  # deleted since the visit
                continue
            row.click_count += 1
            session.add(
                LinkClick(
                    link_id=row.id,
                    workspace_id=row.workspace_id,
                    clicked_at=click.clicked_at,
                    referrer=click.referrer,
                    user_agent=click.user_agent,
                )
            )
            outbox.add_event(
                session,
                workspaces[row.workspace_id],
                "link.clicked",
                {
                    **link_event(LinkView.of(row)),
                    "click": {"clicked_at": rfc3339(click.clicked_at), "referrer": click.referrer},
                },
            )
            written += 1
        return written


def record_click(database: Database, slug: str, referrer: str | None, user_agent: str | None) -> str | None:
    """The destination of the slug on the default domain, counting the click at once; None when there is no such link
    (or it has expired, when the click is not counted).

    Never raises for any slug, referrer or user agent. The visitor's address is not recorded. (The redirect itself
    notes clicks in memory and writes them in batches: `services/click_batches.py`.)
    """
    found = find_destination(database, slug)
    if found.link_id is None or found.destination is None:
        return None
    clicked = record_clicks(database, [new_click(found.link_id, referrer, user_agent)])
    return found.destination if clicked else None
