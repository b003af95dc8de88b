"""GET /v1/me: who the presented credential is, for any valid credential (platforms use it as their auth test)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from token_broker.services.keys import KIND_NAMES
from token_broker.services.verification import VerifiedCredential


async def me(_request: Request, credential: VerifiedCredential) -> Response:
    return JSONResponse(
        {
            "account_id": credential.account_id,
            "workspace": {"name": credential.workspace_name},
            "credential": {
                "id": credential.id,
                "name": credential.name,
                "kind": KIND_NAMES[credential.kind.value],
                "platform": credential.platform,
                "scopes": None if credential.scopes is None else list(credential.scopes),
            },
        }
    )
