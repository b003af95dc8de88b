"""GET /v1/me: who the presented credential is, for any valid credential (platforms use it as their auth test)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from token_broker.api import payloads
from token_broker.api.payloads import JsonResponse
from token_broker.services.verification import VerifiedCredential


async def me(_request: Request, credential: VerifiedCredential) -> Response:
    return JsonResponse(payloads.me(credential))
