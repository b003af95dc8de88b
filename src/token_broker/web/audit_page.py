"""The audit log page: owners and admins, newest first, filtered by action, outcome and actor, paged by id."""

from __future__ import annotations

from urllib.parse import urlencode

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from token_broker.app_state import resources
from token_broker.errors import Forbidden, InvalidInput
from token_broker.services import audit_reading, directory
from token_broker.services.audit import AuditFilter
from token_broker.services.audit_reading import AuditPage
from token_broker.store.models import AUDIT_OUTCOMES
from token_broker.web.frame import html_page, workspace_frame
from token_broker.web.pages import render

PAGE_SIZE = 25


@html_page
async def audit_page(request: Request) -> Response:
    frame = await workspace_frame(request)
    if not frame.can_manage:
        raise Forbidden(
            f"Your role in this workspace is {frame.current.role}; only owners and admins read its audit log."
        )
    query = request.query_params
    database = resources(request).database
    error = None
    try:
        where = audit_reading.validate_filter(query.get("action"), query.get("outcome"), query.get("actor"))
        before_id, limit = audit_reading.validate_page(query.get("before"), query.get("limit") or str(PAGE_SIZE))
    except InvalidInput as refused:
        error, where, before_id, limit = refused.message, AuditFilter(), None, PAGE_SIZE
    page: AuditPage = await to_thread.run_sync(
        lambda: audit_reading.read_audit(database, frame.actor, frame.account_id, where, before_id, limit)
    )
    actions = await to_thread.run_sync(audit_reading.actions_in, database, frame.actor, frame.account_id)
    people = await to_thread.run_sync(directory.people_of, database, frame.actor, frame.account_id)
    names = {person.label: person.email for person in people}
    filters = {name: value for name, value in (("action", where.action), ("outcome", where.outcome),
                                                ("actor", where.actor)) if value}  # fmt: skip
    older = None
    if page.has_more and page.events:
        older = "?" + urlencode({**filters, "before": page.events[-1].id})
    return render(
        request,
        "audit.html",
        {
            **frame.context(request, "audit"),
            "page": page,
            "where": where,
            "filtering": bool(filters),
            "paged": before_id is not None,
            "first_page": "?" + urlencode(filters) if filters else "?",
            "older": older,
            "actions": sorted(set(actions) | ({where.action} if where.action else set())),
            "outcomes": AUDIT_OUTCOMES,
            "people": people,
            "names": names,
            "error": error,
        },
        status_code=422 if error else 200,
    )
