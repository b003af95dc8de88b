"""The bare framework, for baselines: a Starlette app on the same uvicorn with no middleware and no work.

GET /me answers the same JSON as the app's /v1/me; POST /form parses a form and answers a small JSON; GET /healthz is
there for the benchmark's readiness check. `python -m uvicorn benchmarks.bare:app --factory`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ME = {
    "account_id": "acc_benchmark000000",
    "workspace": {"name": "Benchmark"},
    "credential": {"id": "AAAAAAAAAAAA", "name": "bench", "kind": "workspace_key", "platform": None, "scopes": None},
}


async def me(_request: Request) -> JSONResponse:
    return JSONResponse(ME)


async def form(request: Request) -> JSONResponse:
    fields = await request.form()
    return JSONResponse({"ok": True, "fields": len(fields)}, headers={"Cache-Control": "no-store"})


async def health(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def app() -> Starlette:
    return Starlette(routes=[Route("/me", me), Route("/form", form, methods=["POST"]), Route("/healthz", health)])
