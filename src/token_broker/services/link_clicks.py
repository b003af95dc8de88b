"""The public redirect's side of links: find a slug's destination and count the click (with the referrer's host and
a cleaned user agent, never the visitor's address). Past its `expires_at` a link answers expired and counts nothing.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select

from token_broker.services import outbox
from token_broker.services.link_fields import REFERRER_HOST_PATTERN, SLUG_PATTERN
from token_broker.services.links import LinkView
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
    """What the redirect does for a slug: send the visitor on (destination), or answer expired or missing."""

    outcome: str  # "found", "expired" or "missing"
    destination: str | None = None


def record_click(database: Database, slug: str, referrer: str | None, user_agent: str | None) -> str | None:
    """The destination of the slug on the default domain, counting the click; None when there is no such link (or
    it has expired).

    Never raises for any slug, referrer or user agent. The visitor's address is not recorded.
    """
    return visit(database, slug, referrer, user_agent).destination


def visit(database: Database, slug: str, referrer: str | None, user_agent: str | None) -> Visit:
    """As record_click, telling an expired link (whose click is not counted) from a missing one."""
    missing = Visit("missing")
    if not isinstance(slug, str) or SLUG_PATTERN.fullmatch(slug) is None:
        return missing
    by_slug = select(Link).where(Link.domain == DEFAULT_DOMAIN, Link.slug_key == slug.lower())
    with database.read() as session:  # a miss takes no write lock: scanning for slugs does not queue writers
        found = session.execute(by_slug.with_only_columns(Link.id, Link.expires_at)).first()
    if found is None:
        return missing
    if found.expires_at is not None and found.expires_at <= utcnow():
        return Visit("expired")
    host, agent = referrer_host(referrer), clean_user_agent(user_agent)
    with database.write() as session:
        row = session.scalar(by_slug.with_for_update())
        if row is None:  # deleted or renamed since the read
            return missing
        now = utcnow()
        if row.expires_at is not None and row.expires_at <= now:
            return Visit("expired")
        row.click_count += 1
        session.add(
            LinkClick(link_id=row.id, workspace_id=row.workspace_id, clicked_at=now, referrer=host, user_agent=agent)
        )
        outbox.add_event(
            session,
            session.get_one(Workspace, row.workspace_id),
            "link.clicked",
            {"link": LinkView.of(row).to_json(), "click": {"clicked_at": rfc3339(now), "referrer": host}},
        )
        return Visit("found", row.destination)
