"""Rendering pages: one Jinja2 environment, one layout, and the headers every page carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from token_broker.web.sessions import csrf_token

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def security_headers(form_action: str = "'self'") -> dict[str, str]:
    """No framing, no referrer, no third-party anything; scripts and styles only from this origin."""
    return {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200, form_action: str = "'self'"
) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {"csrf_token": csrf_token(request), **context},
        status_code=status_code,
        headers=security_headers(form_action),
    )
