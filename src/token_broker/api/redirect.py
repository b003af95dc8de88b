"""GET /r/{slug}: the public redirect. Limited per address block (`redirect_limit`), then finds the link with one
read, notes the click for the next batch (`clicks`), and sends the visitor on; no credential involved."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from token_broker.app_state import resources
from token_broker.services import link_clicks

# Characters a URL may hold as they are; anything else (non-ASCII) is percent-encoded for the Location header.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%-._~"


def _referrer_host(request: Request) -> str | None:
    referer = request.headers.get("referer")
    if not referer:
        return None
    try:
        host = urlsplit(referer).hostname
    except ValueError:
        return None
    return host[:255] if host else None


async def follow(request: Request) -> Response:
    state = resources(request)
    wait = state.redirect_limit.take(request.client.host if request.client else None)
    if wait:
        return PlainTextResponse(
            "Too many visits from your address: retry after Retry-After seconds.",
            status_code=429,
            headers={"Retry-After": str(wait), "Cache-Control": "no-store"},
        )
    slug: str = request.path_params["slug"]
    found = await to_thread.run_sync(link_clicks.find_destination, state.database, slug)
    if found.outcome == "expired":
        return PlainTextResponse(
            "This short link has expired.", status_code=410, headers={"Cache-Control": "private, max-age=0"}
        )
    if found.link_id is None or found.destination is None:
        return PlainTextResponse("No such short link.", status_code=404)
    state.clicks.note(link_clicks.new_click(found.link_id, _referrer_host(request), request.headers.get("user-agent")))
    return RedirectResponse(
        quote(found.destination, safe=_URL_SAFE),
        status_code=302,
        headers={"Cache-Control": "private, max-age=0", "Referrer-Policy": "no-referrer"},
    )
