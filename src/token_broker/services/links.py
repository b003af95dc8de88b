"""The links of a workspace: list, read, create, update, delete.

Functions take the workspace's internal id (`workspaces.id`): whoever calls them has already decided that the caller
may act in that workspace. A link of another workspace is "not found", exactly like a link that does not exist.
Fields are checked by `services.link_fields`. Every change writes one outbox event in the transaction of the change and
a row of recent activity (services/link_activity.py) naming the credential. A link may expire (`expires_at`): PATCHing
a new `expires_at` (or null) reactivates it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from token_broker.credentials import BASE62
from token_broker.errors import Conflict, InvalidInput, NotFound
from token_broker.services import link_activity, outbox
from token_broker.services.link_fields import (
    bounded,
    is_reserved,
    validate_destination,
    validate_expires_at,
    validate_slug,
)
from token_broker.services.workspaces import new_public_id
from token_broker.store.database import Database
from token_broker.store.link_models import (
    DEFAULT_DOMAIN,
    Link,
)
from token_broker.store.models import Workspace, utcnow
from token_broker.wire import LinkUpdate
from token_broker.wire import link as link_body

LINK_ID_PREFIX = "lnk_"
RANDOM_SLUG_LENGTH = 7
RANDOM_SLUG_ATTEMPTS = 8
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_CREATED_BY_LENGTH = 80
_LINK_ID = re.compile(r"lnk_[0-9A-Za-z]{16}")


@dataclass(frozen=True)
class LinkView:
    """A link, as plain data (the API's body and the link events' are `wire.Link`, built from it)."""

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


# Validation: pure.


_UNCHANGED = object()
CHANGEABLE = LinkUpdate.__struct_fields__  # what a change may name, for callers that pass a plain mapping


def _validate_changes(changes: object) -> tuple[str | None, str | None, object]:
    if not isinstance(changes, Mapping):
        raise InvalidInput("body", f"Send an object with the fields to change: {', '.join(CHANGEABLE)}.")
    for key in changes:
        if key not in CHANGEABLE:
            shown = str(key)[:64]
            raise InvalidInput(shown, f"{shown!r} cannot be changed; only {', '.join(CHANGEABLE)} can.")
    if not changes:
        raise InvalidInput("body", f"Nothing to change: send {', '.join(CHANGEABLE)} or several.")
    destination = validate_destination(changes["destination"]) if "destination" in changes else None
    slug = validate_slug(changes["slug"]) if "slug" in changes else None
    expires_at = validate_expires_at(changes["expires_at"]) if "expires_at" in changes else _UNCHANGED
    return destination, slug, expires_at


# Reads and writes.


def link_event(view: LinkView) -> dict[str, Any]:
    """A link event's data: the link exactly as the API answers it (wire.Link), so connectors read one shape."""
    return {"link": msgspec.to_builtins(link_body(view))}


def _not_found(link_id: object) -> NotFound:
    return NotFound(f"No link {str(link_id)[:64]!r} in this workspace.")


def _taken(slug: str, domain: str) -> Conflict:
    return Conflict(f"The slug {slug!r} is already taken on {domain}; choose another.")


def _workspace(session: Session, workspace_id: int) -> Workspace:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("No such workspace.")
    return workspace


def find_link(session: Session, workspace_id: int, link_id: object, lock: bool = False) -> Link:
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
    limit = bounded("limit", limit, 1, MAX_PAGE_SIZE)
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
        return LinkView.of(find_link(session, workspace_id, link_id))


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
        outbox.add_event(session, workspace, "link.created", link_event(view), source_credential_id)
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
        row = find_link(session, workspace_id, link_id, lock=True)
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
        outbox.add_event(session, workspace, "link.updated", link_event(view), source_credential_id)
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
        row = find_link(session, workspace_id, link_id, lock=True)
        outbox.add_event(session, workspace, "link.deleted", link_event(LinkView.of(row)), source_credential_id)
        link_activity.record(session, "link.deleted", row, source_credential_id, client_address)
        session.delete(row)
