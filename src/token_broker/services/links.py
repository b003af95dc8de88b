"""The link shortener's rules: links of a workspace, the public redirect's click counting, and per-link analytics.

Functions take the workspace's internal id (`workspaces.id`): whoever calls them has already decided that the caller
may act in that workspace. A link of another workspace is "not found", exactly like a link that does not exist.

- Slugs are kept as written and unique per domain regardless of case: `Promo` and `promo` are one slug, and the
  redirect finds either spelling.
- Destinations are absolute http or https URLs. What is stored is plain printable ASCII: the scheme and host are
  lowercased, an international host name is stored in punycode, and characters outside RFC 3986 in the path, query
  and fragment are percent-encoded (UTF-8), so that a redirect's `Location` header never needs escaping.
- Every change (create, update, delete, click) writes one outbox event in the transaction of the change; creations,
  changes and deletions also write a row of recent activity (services/link_activity.py) naming the credential.
- A link may expire (`expires_at`): past it the redirect answers 410 and counts no click; PATCHing a new
  `expires_at` (or null) reactivates it.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import ColumnElement, String, func, literal_column, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from token_broker.credentials import BASE62
from token_broker.errors import Conflict, InvalidInput, NotFound
from token_broker.services import link_activity, outbox
from token_broker.services.workspaces import new_public_id
from token_broker.store.database import Database
from token_broker.store.link_models import (
    DEFAULT_DOMAIN,
    MAX_DESTINATION_LENGTH,
    MAX_REFERRER_LENGTH,
    MAX_SLUG_LENGTH,
    MAX_USER_AGENT_LENGTH,
    Link,
    LinkClick,
)
from token_broker.store.models import Workspace, utcnow
from token_broker.times import rfc3339

LINK_ID_PREFIX = "lnk_"
RANDOM_SLUG_LENGTH = 7
RANDOM_SLUG_ATTEMPTS = 8
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
DEFAULT_ANALYTICS_DAYS = 30
MAX_ANALYTICS_DAYS = 365
TOP_REFERRERS = 5
MAX_CREATED_BY_LENGTH = 80

# Paths that the service, its dashboard or well-known conventions use, or may use, at the root of a domain.
RESERVED_SLUGS = frozenset(
    {
        ".well-known",
        "account",
        "admin",
        "api",
        "app",
        "assets",
        "auth",
        "authorize",
        "callback",
        "connect",
        "dashboard",
        "docs",
        "favicon.ico",
        "health",
        "healthz",
        "help",
        "hooks",
        "links",
        "login",
        "logout",
        "metrics",
        "oauth",
        "openapi.json",
        "r",
        "robots.txt",
        "settings",
        "signup",
        "static",
        "status",
        "support",
        "token",
        "v1",
        "v2",
        "webhooks",
        "workspaces",
    }
)
_API_VERSION = re.compile(r"v[0-9]+")  # v1, v2 and every later version of the API
_SLUG = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_SLUG_LENGTH - 1}}}")
_LINK_ID = re.compile(r"lnk_[0-9A-Za-z]{16}")
_SCHEME = re.compile(r"(https?)://", re.IGNORECASE)
_HOST_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_REFERRER_HOST = re.compile(r"[a-z0-9._:-]+")
# Characters RFC 3986 allows in a URL (with "%" for escapes already made); every other one is percent-encoded.
_URL_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%")

SLUG_RULE = (
    f"slug must be 1 to {MAX_SLUG_LENGTH} characters: letters, digits, '-' and '_', starting with a letter or digit."
)
_DESTINATION_REQUIRED = (
    "destination is required: an absolute http:// or https:// URL, such as https://example.com/page."
)


@dataclass(frozen=True)
class LinkView:
    """A link as the API shows it."""

    id: str
    domain: str
    slug: str
    destination: str
    clicks: int
    created_at: datetime
    updated_at: datetime
    created_by: str
    expires_at: datetime | None = None

    @property
    def status(self) -> str:
        return "expired" if self.expires_at is not None and self.expires_at <= utcnow() else "active"

    @classmethod
    def of(cls, row: Link) -> LinkView:
        return cls(
            id=row.public_id,
            domain=row.domain,
            slug=row.slug,
            destination=row.destination,
            clicks=row.click_count,
            created_at=row.created_at,
            updated_at=row.updated_at,
            created_by=row.created_by,
            expires_at=row.expires_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "domain": self.domain,
            "slug": self.slug,
            "destination": self.destination,
            "clicks": self.clicks,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "created_by": self.created_by,
            "expires_at": rfc3339(self.expires_at),
            "status": self.status,
        }


# Validation: pure.


def _invisible(character: str) -> bool:
    """Whitespace, control, format (zero-width, bidi overrides), surrogate, private-use and unassigned characters."""
    return unicodedata.category(character)[0] in "CZ"


def _ascii_host(hostname: str | None) -> str | None:
    """The host as stored (lowercase, punycode, IPv6 in brackets), or None when it is not a host name or address."""
    if not hostname or "%" in hostname:
        return None
    if "\u00df" in hostname or "\u03c2" in hostname:  # ß and ς: IDNA 2003 (Python's codec) and browsers disagree
        return None
    if ":" in hostname:
        try:
            return f"[{ipaddress.IPv6Address(hostname).compressed}]"
        except ValueError:
            return None
    try:
        encoded = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    core = encoded.removesuffix(".")
    if not core or len(core) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in core.split(".")):
        return None
    return encoded


def _percent_encode(text: str) -> str:
    return "".join(character if character in _URL_CHARACTERS else quote(character, safe="") for character in text)


def validate_destination(value: object) -> str:
    """The destination as stored: an absolute http or https URL in printable ASCII; InvalidInput otherwise."""
    if not isinstance(value, str) or not value:
        raise InvalidInput("destination", _DESTINATION_REQUIRED)
    if len(value) > MAX_DESTINATION_LENGTH:
        raise InvalidInput("destination", f"destination must be at most {MAX_DESTINATION_LENGTH} characters long.")
    if any(_invisible(character) for character in value):
        raise InvalidInput(
            "destination",
            "destination must not contain spaces, control or invisible characters; "
            "percent-encode them (a space is %20).",
        )
    scheme = _SCHEME.match(value)
    if scheme is None:
        raise InvalidInput(
            "destination",
            "destination must start with http:// or https://; other schemes, such as javascript:, data: or file:, "
            "are refused.",
        )
    if "\\" in value:
        raise InvalidInput("destination", "destination must not contain backslashes; percent-encode them as %5C.")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidInput(
            "destination", "destination is not a valid URL: check its host name and port number."
        ) from None
    if "@" in parts.netloc:
        raise InvalidInput(
            "destination", "destination must not carry a user name or password; remove the part up to the '@'."
        )
    if not parts.hostname:
        raise InvalidInput("destination", "destination needs a host name, as in https://example.com/page.")
    host = _ascii_host(parts.hostname)
    if host is None or port == 0:
        raise InvalidInput(
            "destination",
            "destination is not a valid URL: check its host name (an international one may be written in punycode, "
            "xn--...) and port number.",
        )
    rest = value[len(scheme.group(0)) + len(parts.netloc) :]
    normalized = f"{scheme.group(1).lower()}://{host}{'' if port is None else f':{port}'}{_percent_encode(rest)}"
    if len(normalized) > MAX_DESTINATION_LENGTH:
        raise InvalidInput(
            "destination", f"destination must be at most {MAX_DESTINATION_LENGTH} characters long once percent-encoded."
        )
    return normalized


def is_reserved(slug: str) -> bool:
    key = slug.lower()
    return key in RESERVED_SLUGS or _API_VERSION.fullmatch(key) is not None


def validate_slug(value: object) -> str:
    """The slug as written, when it may be used; InvalidInput otherwise."""
    if not isinstance(value, str):
        raise InvalidInput("slug", SLUG_RULE)
    if is_reserved(value):
        raise InvalidInput("slug", f"The slug {value!r} is reserved; choose another.")
    if _SLUG.fullmatch(value) is None:
        raise InvalidInput("slug", SLUG_RULE)
    return value


def _bounded(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(field, f"{field} must be a whole number from {low} to {high}.")
    return value


MAX_EXPIRY = timedelta(days=3660)


def validate_expires_at(value: object) -> datetime | None:
    """An RFC 3339 time with an offset, later than now and within ten years, or None (no expiry)."""
    if value is None:
        return None
    message = "expires_at must be an RFC 3339 time with a zone (2027-01-31T12:00:00Z) later than now, or null."
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidInput("expires_at", message)
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("expires_at", message) from None
    if moment.tzinfo is None or "T" not in value.upper():
        raise InvalidInput("expires_at", message)
    moment = moment.astimezone(UTC)
    now = utcnow()
    if moment <= now:
        raise InvalidInput("expires_at", message)
    if moment - now > MAX_EXPIRY:
        raise InvalidInput("expires_at", "expires_at must be within ten years.")
    return moment


_UNCHANGED = object()


def _validate_changes(changes: object) -> tuple[str | None, str | None, object]:
    if not isinstance(changes, Mapping):
        raise InvalidInput("body", "Send an object with the fields to change: destination, slug, expires_at.")
    for key in changes:
        if key not in ("destination", "slug", "expires_at"):
            shown = str(key)[:64]
            raise InvalidInput(shown, f"{shown!r} cannot be changed; only destination, slug and expires_at can.")
    if not changes:
        raise InvalidInput("body", "Nothing to change: send destination, slug, expires_at or several.")
    destination = validate_destination(changes["destination"]) if "destination" in changes else None
    slug = validate_slug(changes["slug"]) if "slug" in changes else None
    expires_at = validate_expires_at(changes["expires_at"]) if "expires_at" in changes else _UNCHANGED
    return destination, slug, expires_at


# Reads and writes.


def _not_found(link_id: object) -> NotFound:
    return NotFound(f"No link {str(link_id)[:64]!r} in this workspace.")


def _taken(slug: str, domain: str) -> Conflict:
    return Conflict(f"The slug {slug!r} is already taken on {domain}; choose another.")


def _workspace(session: Session, workspace_id: int) -> Workspace:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("No such workspace.")
    return workspace


def _find(session: Session, workspace_id: int, link_id: object, lock: bool = False) -> Link:
    if not isinstance(link_id, str) or _LINK_ID.fullmatch(link_id) is None:
        raise _not_found(link_id)
    query = select(Link).where(Link.public_id == link_id, Link.workspace_id == workspace_id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise _not_found(link_id)
    return row


def _slug_taken(session: Session, domain: str, slug_key: str) -> bool:
    query = select(Link.id).where(Link.domain == domain, Link.slug_key == slug_key).limit(1)
    return session.scalar(query) is not None


def list_links(
    database: Database, workspace_id: int, limit: int = DEFAULT_PAGE_SIZE, starting_after: str | None = None
) -> tuple[list[LinkView], bool]:
    """A page of the workspace's links, newest first, and whether more follow; pass the last id as starting_after."""
    limit = _bounded("limit", limit, 1, MAX_PAGE_SIZE)
    with database.read() as session:
        query = select(Link).where(Link.workspace_id == workspace_id)
        if starting_after is not None:
            if not isinstance(starting_after, str) or _LINK_ID.fullmatch(starting_after) is None:
                cursor = None
            else:
                cursor = session.scalar(
                    select(Link.id).where(Link.public_id == starting_after, Link.workspace_id == workspace_id)
                )
            if cursor is None:
                raise InvalidInput(
                    "starting_after",
                    f"No link {str(starting_after)[:64]!r} in this workspace to start after; "
                    "pass the id of the last link of the previous page.",
                )
            query = query.where(Link.id < cursor)
        rows = list(session.scalars(query.order_by(Link.id.desc()).limit(limit + 1)))
    return [LinkView.of(row) for row in rows[:limit]], len(rows) > limit


def get_link(database: Database, workspace_id: int, link_id: str) -> LinkView:
    with database.read() as session:
        return LinkView.of(_find(session, workspace_id, link_id))


def random_slug() -> str:
    return "".join(secrets.choice(BASE62) for _ in range(RANDOM_SLUG_LENGTH))


def _new_link(
    session: Session,
    workspace: Workspace,
    created_by: str,
    destination: str,
    slug: str | None,
    expires_at: datetime | None = None,
) -> Link:
    """Insert the link, with the slug given or a random free one; Conflict when the slug given is taken."""
    for _ in range(1 if slug is not None else RANDOM_SLUG_ATTEMPTS):
        candidate = slug if slug is not None else random_slug()
        if slug is None and is_reserved(candidate):
            continue
        if _slug_taken(session, DEFAULT_DOMAIN, candidate.lower()):
            continue
        now = utcnow()
        row = Link(
            public_id=new_public_id(LINK_ID_PREFIX),
            workspace_id=workspace.id,
            domain=DEFAULT_DOMAIN,
            slug=candidate,
            slug_key=candidate.lower(),
            destination=destination,
            created_at=now,
            updated_at=now,
            created_by=created_by,
            click_count=0,
            expires_at=expires_at,
        )
        try:
            with session.begin_nested():  # a concurrent creator may take the slug between the check and the insert
                session.add(row)
                session.flush()
        except IntegrityError:
            if not _slug_taken(session, DEFAULT_DOMAIN, candidate.lower()):
                raise
            continue
        return row
    if slug is not None:
        raise _taken(slug, DEFAULT_DOMAIN)
    raise Conflict("No free slug was found for the link; try again, or choose a slug.")


def create_link(
    database: Database,
    workspace_id: int,
    created_by: str,
    destination: object,
    slug: object = None,
    source_credential_id: str | None = None,
    expires_at: object = None,
    client_address: str | None = None,
) -> LinkView:
    """A new link on the default domain; a random 7-character slug when none is given. Writes link.created."""
    if not isinstance(created_by, str) or not 1 <= len(created_by) <= MAX_CREATED_BY_LENGTH:
        raise ValueError(f"created_by must be 1 to {MAX_CREATED_BY_LENGTH} characters")
    clean_destination = validate_destination(destination)
    clean_slug = None if slug is None else validate_slug(slug)
    clean_expiry = validate_expires_at(expires_at)
    with database.write() as session:
        workspace = _workspace(session, workspace_id)
        row = _new_link(session, workspace, created_by, clean_destination, clean_slug, clean_expiry)
        view = LinkView.of(row)
        outbox.add_event(session, workspace, "link.created", {"link": view.to_json()}, source_credential_id)
        link_activity.record(session, "link.created", row, source_credential_id, client_address)
    return view


def update_link(
    database: Database,
    workspace_id: int,
    link_id: str,
    changes: Mapping[str, object],
    source_credential_id: str | None = None,
    client_address: str | None = None,
) -> LinkView:
    """Change a link's destination, slug, expiry or several. Writes link.updated, unless nothing actually changed."""
    destination, slug, expires_at = _validate_changes(changes)
    with database.write() as session:
        workspace = _workspace(session, workspace_id)
        row = _find(session, workspace_id, link_id, lock=True)
        previous = row.destination
        changed = False
        if expires_at is not _UNCHANGED and expires_at != row.expires_at:
            row.expires_at = expires_at if isinstance(expires_at, datetime) else None
            changed = True
        if destination is not None and destination != row.destination:
            row.destination = destination
            changed = True
        if slug is not None and slug != row.slug:
            if slug.lower() != row.slug_key and _slug_taken(session, row.domain, slug.lower()):
                raise _taken(slug, row.domain)
            row.slug, row.slug_key = slug, slug.lower()
            changed = True
        if not changed:
            return LinkView.of(row)
        row.updated_at = utcnow()
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:  # only the slug is unique among what changes: a concurrent change took it
            raise _taken(slug or row.slug, row.domain) from None
        view = LinkView.of(row)
        outbox.add_event(session, workspace, "link.updated", {"link": view.to_json()}, source_credential_id)
        if row.destination != previous or slug is not None:
            shown_previous = previous if row.destination != previous else None
            link_activity.record(session, "link.updated", row, source_credential_id, client_address, shown_previous)
    return view


def delete_link(
    database: Database,
    workspace_id: int,
    link_id: str,
    source_credential_id: str | None = None,
    client_address: str | None = None,
) -> None:
    """Delete a link and its clicks; its slug becomes free. Writes link.deleted holding the link as it was."""
    with database.write() as session:
        workspace = _workspace(session, workspace_id)
        row = _find(session, workspace_id, link_id, lock=True)
        outbox.add_event(session, workspace, "link.deleted", {"link": LinkView.of(row).to_json()}, source_credential_id)
        link_activity.record(session, "link.deleted", row, source_credential_id, client_address)
        session.delete(row)


# The public redirect.


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
    if not host or len(host) > MAX_REFERRER_LENGTH or _REFERRER_HOST.fullmatch(host) is None:
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
    if not isinstance(slug, str) or _SLUG.fullmatch(slug) is None:
        return MISSING
    with database.read() as session:
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
                    "link": LinkView.of(row).to_json(),
                    "click": {"clicked_at": rfc3339(click.clicked_at), "referrer": click.referrer},
                },
            )
            written += 1
        return written


def record_click(database: Database, slug: str, referrer: str | None, user_agent: str | None) -> str | None:
    """The destination of the slug on the default domain, counting the click at once; None when there is no such link
    (or it has expired, when the click is not counted).

    Never raises for any slug, referrer or user agent. The visitor's address is not recorded. (The redirect itself
    notes clicks in memory and writes them in batches: `api/clicks.py`.)
    """
    found = find_destination(database, slug)
    if found.link_id is None or found.destination is None:
        return None
    clicked = record_clicks(database, [new_click(found.link_id, referrer, user_agent)])
    return found.destination if clicked else None


# Analytics.


def _click_day(session: Session) -> ColumnElement[str]:
    """The UTC calendar day of a click, as YYYY-MM-DD, computed by the database."""
    moment = LinkClick.clicked_at
    if session.get_bind().dialect.name == "sqlite":  # stored as naive UTC text
        return func.date(moment, type_=String())
    # Literals rather than bound parameters, so that PostgreSQL sees the same expression in SELECT and GROUP BY.
    return func.to_char(func.timezone(literal_column("'UTC'"), moment), literal_column("'YYYY-MM-DD'"), type_=String())


def link_analytics(
    database: Database, workspace_id: int, link_id: str, days: int = DEFAULT_ANALYTICS_DAYS
) -> dict[str, Any]:
    """Clicks of a link: the total ever, per UTC day over the last `days` days (today included, oldest first, days
    without clicks as 0), and the top referrer hosts over those days."""
    days = _bounded("days", days, 1, MAX_ANALYTICS_DAYS)
    today = utcnow().date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    until = datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
    dates = [(first + timedelta(days=offset)).isoformat() for offset in range(days)]
    with database.read() as session:
        row = _find(session, workspace_id, link_id)
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
    return {
        "link_id": row.public_id,
        "clicks": row.click_count,
        "days": [{"date": key, "clicks": per_day.get(key, 0)} for key in dates],
        "top_referrers": [{"referrer": referrer, "clicks": count} for referrer, count in referrers],
    }
