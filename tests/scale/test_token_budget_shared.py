"""With Redis, a client's token-endpoint budget is one budget across instances, charged only after the client
authenticates: junk naming the client, sent to both instances, costs it nothing."""

from __future__ import annotations

import secrets
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.connect import connect, refresh, register
from tests.scale.instances import two_servers
from tests.support import Team
from token_broker.store.database import Database

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
BUDGET = 6


def test_the_shared_budget_counts_only_authenticated_requests(
    postgres_url: str, redis_url: str, pg_database: Database, pg_team: Team, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        servers = two_servers(stack, postgres_url, tmp_path, TOKEN_BROKER_REDIS_URL=redis_url,
                              TOKEN_BROKER_SECRET_KEY=secrets.token_urlsafe(32),
                              TOKEN_BROKER_TOKEN_RATE_LIMIT=f"{BUDGET}/minute")  # fmt: skip
        zapier = register(pg_database, "zapier")
        junk = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": zapier.client_id,
                "client_secret": "wrong"}  # fmt: skip
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport, timeout=30) as attacker:
            for base in (servers.a, servers.b) * 10:  # 20 junk requests, more than the budget, over both instances
                assert attacker.post(f"{base}/oauth/token", data=junk).status_code in (400, 429)
        tokens = connect(servers.a, zapier, pg_team.account_id)  # the budget's first request
        statuses = []
        for base in (servers.a, servers.b) * BUDGET:
            answer = refresh(base, zapier, tokens["refresh_token"])
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                tokens = answer.json()
            else:
                assert answer.json()["error"] == "rate_limited" and int(answer.headers["retry-after"]) >= 1
        # one shared budget: BUDGET - 1 refreshes after the exchange, over both instances, then 429
        assert statuses == [200] * (BUDGET - 1) + [429] * (2 * BUDGET - (BUDGET - 1))
