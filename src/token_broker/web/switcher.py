"""The workspace switcher's target: a plain GET form (works without JavaScript) that lands on the chosen panel."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from token_broker.web.frame import html_page
from token_broker.web.sessions import require_user


@html_page
async def switch_workspace(request: Request) -> Response:
    await require_user(request)
    account_id = request.query_params.get("account_id", "")
    if not account_id.isascii() or not account_id.replace("_", "").isalnum() or len(account_id) > 40:
        return RedirectResponse("/", status_code=303)
    # The panel answers 404 for a workspace the user has no role in, as it does when the address is typed.
    return RedirectResponse(f"/workspaces/{account_id}/api-access", status_code=303)
