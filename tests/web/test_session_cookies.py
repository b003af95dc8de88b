"""Session cookies the server signed but must no longer honour: one from before session generations existed (no
`gen`), one whose generation is stale, one older than the session's lifetime. Each is refused by the pages and the
admin API, while the user's own current session works on."""

from __future__ import annotations

import json
import time
from base64 import b64encode
from contextlib import closing
from typing import Any

import itsdangerous
from sqlalchemy import select

from tests.live import LiveServer
from tests.support import Team
from tests.web.test_session_end import signed_in_client
from token_broker.store.models import User
from token_broker.web.sessions import SESSION_SECONDS


def forge(live: LiveServer, session: dict[str, Any]) -> str:
    """A cookie signed with the server's own key, as Starlette's SessionMiddleware signs one."""
    signer = itsdangerous.TimestampSigner(str(live.resources.settings.secret_key))
    return signer.sign(b64encode(json.dumps(session).encode())).decode()


def test_signed_cookies_without_a_current_generation_are_refused(live: LiveServer, team: Team) -> None:
    with live.resources.database.read() as session:
        user = session.scalars(select(User).where(User.email == "admin@acme.example")).one()
    now = int(time.time())
    current = {"uid": user.id, "at": now, "csrf": "x" * 43}
    cookies = {
        "no generation (issued before generations)": forge(live, current),
        "a stale generation": forge(live, {**current, "gen": user.session_generation - 1}),
        "a generation that is not a number": forge(live, {**current, "gen": str(user.session_generation)}),
        "older than a session lives": forge(
            live, {**current, "gen": user.session_generation, "at": now - SESSION_SECONDS - 60}
        ),
    }
    owner, _ = signed_in_client(live, "admin@acme.example")
    with closing(owner):
        for what, cookie in cookies.items():
            with live.client(cookies={"tb_session": cookie}) as thief:
                assert thief.get("/api/session").status_code == 401, what
                api = thief.get(f"/api/workspaces/{team.account_id}/keys")
                assert api.status_code == 401 and api.json()["error"] == "not_signed_in", what
                page = thief.get(f"/workspaces/{team.account_id}/api-access")
                assert page.status_code == 303 and page.headers["location"].startswith("/login"), what
            assert owner.get(f"/api/workspaces/{team.account_id}/keys").status_code == 200, "the real session works"
    genuine = forge(live, {**current, "gen": user.session_generation})
    with live.client(cookies={"tb_session": genuine}) as control:
        assert control.get("/api/session").status_code == 200, "the forgery differs from a real cookie only there"
