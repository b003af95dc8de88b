"""An attacker who knows a user's email cannot keep them out: failures are counted per (email, address block) and per
address block, never per email alone. The attack runs from two loopback addresses while the user signs in from a third.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx

from tests.browser_forms import sign_in
from tests.live import LiveServer
from tests.support import PASSWORD, Team
from token_broker.guard.sign_in_throttle import SignInThrottle
from token_broker.sources import source_of

VICTIM = "owner@acme.example"


def client_from(live: LiveServer, address: str) -> httpx.Client:
    return httpx.Client(base_url=live.base_url, timeout=60, transport=httpx.HTTPTransport(local_address=address))


def test_a_wrong_password_flood_does_not_keep_the_user_out(live: LiveServer, team: Team) -> None:
    stop = threading.Event()
    seen: Counter[int] = Counter()
    counting = threading.Lock()

    def attack(address: str) -> None:
        with client_from(live, address) as attacker:
            for attempt in range(300):  # bounded in count, and stopped as soon as the user is done
                if stop.is_set():
                    return
                status = sign_in(attacker, VICTIM, f"guess {address} {attempt}").status_code
                with counting:
                    seen[status] += 1

    attackers = [threading.Thread(target=attack, args=(address,)) for address in ("127.0.0.2", "127.0.0.3")]
    for thread in attackers:
        thread.start()
    try:
        with client_from(live, "127.0.0.4") as user:
            deadline = time.monotonic() + 120
            # until both attackers have used up their budgets (5 failures each), however slowly they are served
            while (seen[429] < 4 or seen[401] < 10) and time.monotonic() < deadline:
                stop.wait(0.05)
            for _ in range(3):
                answer = sign_in(user, VICTIM, PASSWORD)
                assert answer.status_code == 303, answer.text
                user.cookies.clear()
    finally:
        stop.set()
        for thread in attackers:
            thread.join()
    assert seen[401] >= 10 and seen[429] >= 4, seen
    with client_from(live, "127.0.0.2") as attacker:
        # The attacker's own address stays refused for this email, even with the right password.
        assert sign_in(attacker, VICTIM, PASSWORD).status_code == 429


def test_one_address_spraying_many_emails_runs_dry(live: LiveServer, team: Team) -> None:
    with client_from(live, "127.0.0.5") as attacker:
        statuses = [sign_in(attacker, f"nobody{index}@acme.example", "guess").status_code for index in range(22)]
    assert statuses[:20] == [401] * 20 and statuses[-1] == 429
    with client_from(live, "127.0.0.6") as user:
        assert sign_in(user, "admin@acme.example", PASSWORD).status_code == 303


def test_ipv6_addresses_count_by_their_64() -> None:
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of("::ffff:192.0.2.7") == "192.0.2.7"
    throttle = SignInThrottle()
    for index in range(5):
        assert throttle.admit(VICTIM, f"2001:db8:1:2::{index + 1}")
    assert not throttle.admit(VICTIM, "2001:db8:1:2::99")  # another address of the same /64
    assert throttle.admit(VICTIM, "2001:db8:9:9::1")  # another subscriber entirely


def test_the_email_wide_count_slows_failures_but_never_refuses() -> None:
    throttle = SignInThrottle(per_email=(2, 1 / 60))
    assert [throttle.failed(VICTIM) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert throttle.admit(VICTIM, "192.0.2.50")  # a clean address still gets its attempt checked
