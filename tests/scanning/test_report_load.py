"""Anyone can make a trusted scanner report token-shaped strings that name real key ids (ids are public) with made-up
secrets, each costing an argon2 check. Verified reports are therefore handled one at a time, a few more wait, and
beyond that a report is answered 503 with Retry-After; meanwhile the key those strings name keeps working."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.live import LiveServer
from tests.makers import Keys
from tests.scanning.keysets import SigningKey, body_of, match, send
from token_broker import credentials
from token_broker.credentials import CredentialKind
from token_broker.scanning.endpoint import MAX_WAITING_REPORTS
from token_broker.services import leaks


def test_forged_reports_are_checked_one_at_a_time_and_a_flood_is_shed(
    live: LiveServer, make: Keys, signing_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = make.workspace_key(name="Nightly import", rate_limits=["1000/minute"])
    assert key.plaintext is not None
    forged = [
        credentials.compose(CredentialKind.WORKSPACE_KEY, key.view.id, f"{n:032d}").plaintext
        for n in range(MAX_WAITING_REPORTS + 2)
    ]
    gate, lock = threading.Event(), threading.Lock()
    running, most = 0, 0
    real_identify = leaks._identify

    def watched(*args: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            gate.wait(60)
            return real_identify(*args)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(leaks, "_identify", watched)
    slots = live.resources.report_slots
    held = forged[: MAX_WAITING_REPORTS + 1]  # one being checked, the rest waiting
    with ThreadPoolExecutor(len(held)) as pool:
        try:
            answers = [pool.submit(send, live.base_url, signing_key, body_of(match(token))) for token in held]
            deadline = time.monotonic() + 60
            while slots.statistics().tasks_waiting < MAX_WAITING_REPORTS and time.monotonic() < deadline:
                time.sleep(0.02)
            assert slots.statistics().tasks_waiting == MAX_WAITING_REPORTS
            me = httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {key.plaintext}"}, timeout=30)
            assert me.status_code == 200, "the named key works while forged reports wait"
            shed = send(live.base_url, signing_key, body_of(match(forged[-1])))
            assert shed.status_code == 503 and shed.json()["error"] == "service_unavailable"
            assert shed.headers["retry-after"] == "60"
        finally:
            gate.set()
        results = [answer.result(120) for answer in answers]
    assert [r.status_code for r in results] == [200] * len(held)
    assert all(r.json()[0]["label"] == "false_positive" for r in results)
    assert most == 1, "reports are checked one at a time"
    retried = send(live.base_url, signing_key, body_of(match(forged[-1])))
    assert retried.status_code == 200, "the shed report is taken when retried"
