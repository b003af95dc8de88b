"""GET /metrics: the Prometheus text format, for whoever may read it.

With TOKEN_BROKER_METRICS_TOKEN set, a scraper sends `Authorization: Bearer <token>` from anywhere. Without it, only
the machine itself may read them: the connection must come from a loopback address and carry no X-Forwarded-For or
Forwarded header (a reverse proxy on the same machine adds one, so the public cannot reach them through it). Anyone
else gets the same 404 as for any unknown path: metrics name routes, error rates and queue depths, which an outsider
has no business seeing.
"""

from __future__ import annotations

import hmac
import ipaddress

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from token_broker.app_state import resources
from token_broker.observe.metrics import CONTENT_TYPE, metrics_of

FORWARDING_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")


def may_read(request: Request, token: str | None) -> bool:
    if token is not None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())
    if any(name in FORWARDING_HEADERS for name, _ in request.scope["headers"]):
        return False
    # The socket's peer: the app's proxy-headers middleware leaves it alone for requests without forwarding headers.
    client = request.scope.get("client")
    try:
        return client is not None and ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


async def metrics(request: Request) -> Response:
    state = resources(request)
    if not may_read(request, state.settings.metrics_token):
        if state.settings.metrics_token is not None:
            return PlainTextResponse(
                "Send the metrics token as a Bearer token.",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
            )
        return PlainTextResponse("Not Found", status_code=404)
    body = await to_thread.run_sync(metrics_of(request).render)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
