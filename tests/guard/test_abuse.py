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
LATENCY_SAMPLES = 20
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
    """Wrong secrets for the victims' ids from 8 addresses; each victim's real key gets in meanwhile.

    The victims try once every attacker has been refused: one failure makes an address a suspect, which is all the
    server ever learns of an attacker, so the flood is in its stride then. (Waiting for twice as many refusals in
    total, as this test did, proved no more and cost 8 more production-cost hashes on the suspects' one thread.) The
    server is killed once the victims are in: a graceful stop would hash the attackers' queued requests one by one. The
    flood may last 120 s, so that on a very busy machine it is still on when the last victim is in."""
    production = SecretHasher(HashingCost())
    made = Keys(database, production, team)
    victims = [made.workspace_key(rate_limits=["10000/minute"]) for _ in range(3)]
    with serve(database_url, tmp_path / "server.log") as served:

        def wrong_secret_for_a_victim(client: httpx.Client) -> int:
            victim = victims[secrets.randbelow(len(victims))]
            wrong = credentials.generate(CredentialKind.WORKSPACE_KEY, public_id=victim.view.id).plaintext
            return client.get("/v1/me", headers=bearer(wrong)).status_code

        with (
            Flood(served.base_url, ATTACKERS, wrong_secret_for_a_victim, seconds=120) as flood,
            client_from(served.base_url, "127.0.0.1") as legitimate,
        ):
            deadline = time.monotonic() + 60
            while flood.answered_from != set(ATTACKERS) and time.monotonic() < deadline:
                time.sleep(0.1)  # the flood is in its stride: every attacker has been refused, so each is a suspect
            in_stride = len(flood.statuses)
            attackers_refused = set(flood.answered_from)
            waits = []
            for victim in victims:  # each never seen by the server: first use, as after a restart or rotation
                waits.append(accepted_within(legitimate, victim.plaintext, 10))
                time.sleep(0.5)
            attacking_throughout = flood.running()
            deadline = time.monotonic() + 60
            while len(flood.statuses) == in_stride and time.monotonic() < deadline:
                time.sleep(0.1)  # on a busy machine the suspects' one thread may not have answered again yet
            during_flood = len(flood.statuses)
            served.kill()  # the attackers' queued requests end now, not after being hashed one by one
        assert all(wait is not None for wait in waits), waits
        assert attackers_refused == set(ATTACKERS) and in_stride >= len(ATTACKERS)
        assert attacking_throughout and during_flood > in_stride  # the attack really ran meanwhile
        assert set(flood.statuses) <= {401, 503, 0}


@sqlite_only
def test_sign_in_floods_keep_memory_bounded_and_cached_keys_fast(
    database_url: str, database: Database, team: Team, tmp_path: Path
) -> None:
    """48 sign-ins at once from 8 addresses, at production cost, while a cached key is used. The key is timed until
    the server sheds the flood (503: its hashing queue is full, so argon2 runs as many at once as it ever will) and
    LATENCY_SAMPLES answers are in; a fixed 15 s of watching measured nothing more. The memory peak is read after the
    flood has drained, so it covers the whole attack."""
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

        latencies: list[float] = []
        with Flood(served.base_url, ATTACKERS * 6, sign_in_as_nobody, seconds=40, count=100) as flood:
            began_flood = time.monotonic()
            # Watched until the flood has saturated the server (it sheds: 503) and the cached key has been timed
            # LATENCY_SAMPLES times under it, or 15 s: the pool is full and memory at its peak once the server sheds.
            while time.monotonic() - began_flood < 15 and not (
                len(latencies) >= LATENCY_SAMPLES and 503 in flood.statuses and len(flood.statuses) >= len(ATTACKERS)
            ):
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
