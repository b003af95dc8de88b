"""No outsider can lock a key out, exhaust memory with argon2, or stall a cached key, through a real server process
at production argon2 cost, while a legitimate caller works. Bounds are generous: they hold on a busy 2-core machine,
and the attacks they guard against measured far beyond them (a real key refused 49 times of 49; 2 GB of RSS)."""

from __future__ import annotations

import secrets
import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.browser_forms import hidden_inputs
from tests.guard.attacks import Flood, client_from, serve
from tests.makers import Keys
from tests.support import Team
from token_broker import credentials
from token_broker.config import HashingCost
from token_broker.credentials import CredentialKind, SecretHasher
from token_broker.store.database import Database

ATTACKERS = [f"127.0.0.{host}" for host in range(2, 10)]
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def accepted_within(client: httpx.Client, key: str, seconds: float) -> float | None:
    """Seconds until the key is accepted (retrying 503s as told), or None if refused or never within `seconds`."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        answer = client.get("/v1/me", headers=bearer(key))
        if answer.status_code == 200:
            return time.monotonic() - began
        if answer.status_code != 503:
            return None
        time.sleep(min(float(answer.headers.get("retry-after", "1")), 1.0))
    return None


@sqlite_only
def test_a_flood_of_wrong_secrets_on_an_id_does_not_keep_the_real_key_out(
    database_url: str, database: Database, team: Team, tmp_path: Path
) -> None:
    production = SecretHasher(HashingCost())
    made = Keys(database, production, team)
    victims = [made.workspace_key(rate_limits=["10000/minute"]) for _ in range(3)]
    with serve(database_url, tmp_path / "server.log") as served:

        def wrong_secret_for_a_victim(client: httpx.Client) -> int:
            victim = victims[secrets.randbelow(len(victims))]
            wrong = credentials.generate(CredentialKind.WORKSPACE_KEY, public_id=victim.view.id).plaintext
            return client.get("/v1/me", headers=bearer(wrong)).status_code

        with (
            Flood(served.base_url, ATTACKERS, wrong_secret_for_a_victim, seconds=60) as flood,
            client_from(served.base_url, "127.0.0.1") as legitimate,
        ):
            deadline = time.monotonic() + 60
            while len(flood.statuses) < 2 * len(ATTACKERS) and time.monotonic() < deadline:
                time.sleep(0.1)  # the flood is in its stride: every attacker has been refused
            in_stride = len(flood.statuses)
            waits = []
            for victim in victims:  # each never seen by the server: first use, as after a restart or rotation
                waits.append(accepted_within(legitimate, victim.plaintext, 10))
                time.sleep(0.5)
            during_flood = len(flood.statuses)
        assert all(wait is not None for wait in waits), waits
        assert during_flood > in_stride >= 2 * len(ATTACKERS)  # the attack really ran meanwhile
        assert set(flood.statuses) <= {401, 503, 0}


@sqlite_only
def test_sign_in_floods_keep_memory_bounded_and_cached_keys_fast(
    database_url: str, database: Database, team: Team, tmp_path: Path
) -> None:
    issued = Keys(database, SecretHasher(HashingCost()), team).workspace_key(rate_limits=["100000/minute"])
    with (
        serve(database_url, tmp_path / "server.log") as served,
        client_from(served.base_url, "127.0.0.1") as legitimate,
    ):
        assert legitimate.get("/v1/me", headers=bearer(issued.plaintext)).status_code == 200  # now cached
        baseline_kib = served.memory_kib("VmRSS")

        def sign_in_as_nobody(client: httpx.Client) -> int:
            form = hidden_inputs(client.get("/login").text, "/login")
            email = f"{secrets.token_hex(8)}@nowhere.example"
            return client.post("/login", data={**form, "email": email, "password": "guess-guess"}).status_code

        latencies = []
        with Flood(served.base_url, ATTACKERS * 6, sign_in_as_nobody, seconds=40, count=100) as flood:
            began_flood = time.monotonic()
            while time.monotonic() - began_flood < 15:
                began = time.monotonic()
                assert legitimate.get("/v1/me", headers=bearer(issued.plaintext)).status_code == 200
                latencies.append(time.monotonic() - began)
                time.sleep(0.1)
            answered = len(flood.statuses)
        peak_kib = served.memory_kib("VmHWM")
    assert answered >= len(ATTACKERS)  # the flood ran meanwhile: 48 sign-ins at once from 8 addresses
    assert set(flood.statuses) <= {401, 429, 503, 0} and 503 in flood.statuses  # the excess was shed
    # argon2id takes 64 MiB a run: at most the pool's threads run at once, not one per request
    assert (peak_kib - baseline_kib) / 1024 < 512, (baseline_kib, peak_kib)
    assert statistics.median(latencies) < 2.0, latencies
