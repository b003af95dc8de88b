"""Client ids are public: requests that name a client without its secret must never cost that client anything.

An attacker on other addresses floods /oauth/token, /oauth/revoke and /oauth/introspect with junk naming Zapier's
client id while Zapier refreshes from its own address: every real refresh succeeds, the attacker's addresses run out
of failed authentications and get 429 with Retry-After, and Zapier's budget is charged only for its own requests.
"""

from __future__ import annotations

import base64
import ipaddress
import threading
from collections import Counter

import httpx
import pytest

from tests.connect import Platform, connect, refresh, register
from tests.live import live_server
from tests.support import Team
from token_broker.oauth.auth_failures import AuthFailures
from token_broker.sources import source_of

ATTACKERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
JUNK_PER_ATTACKER = 45  # 135 in all: more than the client's whole budget below
FAILURES_PER_ADDRESS = 10


def junk_requests(platform: Platform) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(path, form, headers): everything an outsider can send knowing only the client id."""
    wrong_basic = base64.b64encode(f"{platform.client_id}:not-the-secret".encode()).decode()
    token = {"token": "pat_" + "A" * 40}
    return [
        ("/oauth/token", {"grant_type": "refresh_token", "refresh_token": "x", "client_id": platform.client_id}, {}),
        (
            "/oauth/token",
            {
                "grant_type": "refresh_token",
                "refresh_token": "x",
                "client_id": platform.client_id,
                "client_secret": "wrong",
            },
            {},
        ),
        ("/oauth/token", {"grant_type": "authorization_code", "code": "x"}, {"Authorization": f"Basic {wrong_basic}"}),
        ("/oauth/revoke", {**token, "client_id": platform.client_id, "client_secret": "wrong"}, {}),
        ("/oauth/introspect", token, {"Authorization": f"Basic {wrong_basic}"}),
        ("/oauth/token", {"grant_type": "refresh_token", "refresh_token": "x"}, {"Authorization": "Basic %%%"}),
    ]


def flood(base_url: str, address: str, platform: Platform, answers: Counter[int], retry_after: list[str]) -> None:
    kinds = junk_requests(platform)
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=base_url, transport=transport, timeout=30) as client:
        for index in range(JUNK_PER_ATTACKER):
            path, form, headers = kinds[index % len(kinds)]
            answer = client.post(path, data=form, headers=headers)
            answers[answer.status_code] += 1
            if answer.status_code == 429:
                assert answer.json()["error"] == "rate_limited" and answer.json()["error_description"]
                retry_after.append(answer.headers["retry-after"])
            else:
                assert answer.json()["error"] in ("invalid_client", "invalid_request"), answer.text


def test_a_flood_naming_the_client_never_locks_it_out(database_url: str, team: Team) -> None:
    with live_server(database_url, token_rate_limit="60/minute",
                     client_auth_failure_limit=f"{FAILURES_PER_ADDRESS}/hour") as live:  # fmt: skip
        zapier = register(live.resources.database, "zapier")
        tokens = connect(live.base_url, zapier, team.account_id)
        answers: Counter[int] = Counter()
        retry_after: list[str] = []
        attackers = [threading.Thread(target=flood, args=(live.base_url, address, zapier, answers, retry_after))
                     for address in ATTACKERS]  # fmt: skip
        for attacker in attackers:
            attacker.start()
        try:
            for _ in range(10):
                answer = refresh(live.base_url, zapier, tokens["refresh_token"])
                assert answer.status_code == 200, answer.text
                tokens = answer.json()
        finally:
            for attacker in attackers:
                attacker.join(timeout=120)
        # all the junk is in (more requests than the client's budget), and the client still refreshes
        answer = refresh(live.base_url, zapier, tokens["refresh_token"])
        assert answer.status_code == 200, answer.text
        tokens = answer.json()
        # each attacking address got its failures and then 429s; nothing else
        assert answers[429] == len(ATTACKERS) * (JUNK_PER_ATTACKER - FAILURES_PER_ADDRESS)
        assert answers[400] + answers[401] == len(ATTACKERS) * FAILURES_PER_ADDRESS
        assert retry_after and all(value.isdigit() and int(value) >= 1 for value in retry_after)
        # the real client's introspection and revocation still work from its own address
        auth = {"client_id": zapier.client_id, "client_secret": zapier.client_secret}
        seen = httpx.post(f"{live.base_url}/oauth/introspect", data={"token": tokens["access_token"], **auth})
        assert seen.status_code == 200 and seen.json()["active"] is True


def test_the_client_budget_is_charged_after_authentication(database_url: str, team: Team) -> None:
    with live_server(database_url, token_rate_limit="4/minute") as live:
        zapier = register(live.resources.database, "zapier")
        tokens = connect(live.base_url, zapier, team.account_id)  # the exchange is the budget's first request
        junk = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": zapier.client_id}
        for _ in range(8):  # junk from the same address: failures of that address, not requests of the client
            assert httpx.post(f"{live.base_url}/oauth/token", data=junk).json()["error"] == "invalid_client"
        for _ in range(3):
            answer = refresh(live.base_url, zapier, tokens["refresh_token"])
            assert answer.status_code == 200, answer.text
            tokens = answer.json()
        limited = refresh(live.base_url, zapier, tokens["refresh_token"])
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1 and limited.json()["error_description"]


def test_failures_are_counted_per_ipv6_64(database_url: str, team: Team) -> None:
    trusted = (ipaddress.ip_network("127.0.0.1/32"),)
    with live_server(database_url, trusted_proxies=trusted, client_auth_failure_limit="5/hour") as live:
        zapier = register(live.resources.database, "zapier")
        tokens = connect(live.base_url, zapier, team.account_id)
        junk = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": zapier.client_id,
                "client_secret": "wrong"}  # fmt: skip

        def from_address(address: str, form: dict[str, str]) -> httpx.Response:
            return httpx.post(f"{live.base_url}/oauth/token", data=form, headers={"X-Forwarded-For": address})

        # five addresses of one /64 share its five failures; the sixth address of that /64 is refused
        for host in range(1, 6):
            assert from_address(f"2001:db8:1:2::{host:x}", junk).status_code == 400
        refused = from_address("2001:db8:1:2:ffff:ffff:ffff:ffff", junk)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        # even with the right secret, that /64 waits; another /64 and the client's own address are untouched
        good = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                "client_id": zapier.client_id, "client_secret": zapier.client_secret}  # fmt: skip
        assert from_address("2001:db8:1:2::77", good).status_code == 429
        assert from_address("2001:db8:1:3::1", junk).status_code == 400
        assert from_address("203.0.113.9", good).status_code == 200


def test_address_buckets() -> None:
    assert source_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert source_of("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_of("192.0.2.1") == "192.0.2.1"
    assert source_of(None) == source_of("not an address") == "unknown"


@pytest.mark.parametrize("count", [1, 3])
def test_failure_budget_refills_over_its_period(count: int) -> None:
    failures = AuthFailures(f"{count}/minute", max_buckets=2)
    for _ in range(count):
        assert failures.retry_after("a", now=0.0) is None
        failures.charge("a", now=0.0)
    wait = failures.retry_after("a", now=0.0)
    assert wait is not None and 1 <= wait <= 60
    assert failures.retry_after("a", now=float(wait)) is None
    assert failures.retry_after("b", now=0.0) is None
    failures.charge("b", now=0.0)
    failures.charge("c", now=0.0)  # bounded: the oldest bucket is forgotten, which only gives "a" its budget back
    assert failures.retry_after("a", now=0.0) is None
