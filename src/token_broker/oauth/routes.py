"""The authorization server's routes. AUTHORIZE_ROUTES need the dashboard session; TOKEN_ROUTES do not."""

from __future__ import annotations

from starlette.routing import BaseRoute

AUTHORIZE_ROUTES: list[BaseRoute] = []
TOKEN_ROUTES: list[BaseRoute] = []
