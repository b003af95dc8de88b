"""Reading a workspace's audit log: owners and admins only, newest first, filtered, paged by id."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from token_broker.errors import InvalidInput
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditFilter, AuditView, list_events
from token_broker.services.workspaces import authorize, find_workspace
from token_broker.store.database import Database
from token_broker.store.models import AUDIT_OUTCOMES, AuditEvent

DEFAULT_PAGE = 50
MAX_PAGE = 100
MAX_FILTER_LENGTH = 80


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditView]
    has_more: bool


def validate_filter(action: object, outcome: object, actor: object) -> AuditFilter:
    """Filters as typed: empty means any; an unknown outcome or an over-long value is refused, naming the field."""
    values: dict[str, str | None] = {}
    for field, value in (("action", action), ("outcome", outcome), ("actor", actor)):
        if value is None or value == "":
            values[field] = None
        elif not isinstance(value, str) or len(value) > MAX_FILTER_LENGTH or not value.isprintable():
            raise InvalidInput(field, f"{field} must be a short text, at most {MAX_FILTER_LENGTH} characters")
        else:
            values[field] = value
    if values["outcome"] is not None and values["outcome"] not in AUDIT_OUTCOMES:
        raise InvalidInput("outcome", f"outcome must be one of {', '.join(AUDIT_OUTCOMES)}")
    return AuditFilter(**values)


def validate_page(before: object, limit: object) -> tuple[int | None, int]:
    """`before` (an audit row id) and `limit` (1 to MAX_PAGE) as given in a query string."""
    before_id = None
    if before not in (None, ""):
        if not isinstance(before, str) or not before.isdigit() or len(before) > 18:
            raise InvalidInput("before", "before must be the id of an audit row, a whole number")
        before_id = int(before)
    size = DEFAULT_PAGE
    if limit not in (None, ""):
        if not isinstance(limit, str) or not limit.isdigit() or len(limit) > 6 or not 1 <= int(limit) <= MAX_PAGE:
            raise InvalidInput("limit", f"limit must be a whole number from 1 to {MAX_PAGE}")
        size = int(limit)
    return before_id, size


def read_audit(
    database: Database,
    actor: Actor,
    account_id: str,
    where: AuditFilter,
    before_id: int | None = None,
    limit: int = DEFAULT_PAGE,
) -> AuditPage:
    """One page of the workspace's audit rows, newest first. Pass the last id seen as before_id for the next."""
    with database.read() as session:
        workspace = find_workspace(session, account_id)
        authorize(session, actor, workspace, manage=True)
        rows = list_events(session, workspace, before_id=before_id, limit=limit + 1, where=where)
    return AuditPage(events=rows[:limit], has_more=len(rows) > limit)


def actions_in(database: Database, actor: Actor, account_id: str) -> list[str]:
    """The actions the workspace's log holds, for a filter's choices."""
    with database.read() as session:
        workspace = find_workspace(session, account_id)
        authorize(session, actor, workspace, manage=True)
        found = session.scalars(
            select(AuditEvent.action).where(AuditEvent.workspace_id == workspace.id).distinct().order_by("action")
        )
        return list(found)
