"""Races on the token endpoint, as platforms produce them: concurrent code redemptions and concurrent refreshes."""

from __future__ import annotations

import asyncio

import httpx

from tests.connect import connect, get_code, register
from tests.live import LiveServer
from tests.support import Team
from token_broker.services import connections


async def _burst(url: str, forms: list[dict[str, str]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60) as client:
        return list(await asyncio.gather(*(client.post(url, data=form) for form in forms)))


def test_fifty_concurrent_redemptions_of_one_code_give_one_success(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "zapier")
    code = get_code(live.base_url, platform, team.account_id)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": platform.redirect_uri,
            "code_verifier": platform.verifier, "client_id": platform.client_id,
            "client_secret": platform.client_secret}  # fmt: skip
    answers = asyncio.run(_burst(f"{live.base_url}/oauth/token", [form] * 50))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(200) == 1 and statuses.count(400) == 49, statuses
    assert {answer.json()["error"] for answer in answers if answer.status_code == 400} == {"invalid_grant"}


def test_twenty_concurrent_refreshes_leave_one_live_family(live: LiveServer, team: Team) -> None:
    platform = register(live.resources.database, "n8n", team.account_id, team.admin)
    tokens = connect(live.base_url, platform, team.account_id)
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": platform.client_id,
            "client_secret": platform.client_secret}  # fmt: skip
    answers = asyncio.run(_burst(f"{live.base_url}/oauth/token", [form] * 20))
    assert all(answer.status_code < 500 for answer in answers)
    pairs = {(a.json()["access_token"], a.json()["refresh_token"]) for a in answers if a.status_code == 200}
    assert len(pairs) == 1, [a.text for a in answers if a.status_code != 200]
    [(access, refresh_token)] = pairs
    [connection] = connections.list_connections(live.resources.database, team.admin, team.account_id)
    assert connection.status == "active"
    follow = httpx.post(f"{live.base_url}/oauth/token", data={**form, "refresh_token": refresh_token})
    assert follow.status_code == 200
    assert httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {access}"}).status_code == 200
