"""examples/webhook_receiver.py, run as its docstring says, receives real deliveries and refuses forged ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port
from tests.webhooks.conftest import make_events, run_worker
from token_broker.config import Settings
from token_broker.net import signing
from token_broker.services import webhook_subscriptions
from token_broker.services.verification import VerifiedCredential
from token_broker.store.database import Database

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"


def wait_for_text(path: Path, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while text not in (found := path.read_text()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared in:\n{found}")
        time.sleep(0.02)
    return found


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_example_receiver_verifies_and_prints_events(
    database: Database, settings: Settings, owner: VerifiedCredential, tmp_path: Path
) -> None:
    port = free_port()
    created = webhook_subscriptions.create_hook(
        database, owner, "link.created", f"http://127.0.0.1:{port}/hooks", settings
    )
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--port", str(port)],
            env={**os.environ, "WEBHOOK_SECRET": created.secret},
            stdout=stdout,
            stderr=stderr,
        )
    try:
        wait_for_text(out, "listening on")
        link_ids = make_events(database, owner, 2)
        run_worker(
            database, settings, lambda: sum(" link.created " in line for line in out.read_text().splitlines()) >= 2
        )
        lines = [line for line in out.read_text().splitlines() if " link.created " in line]
        assert sorted(json.loads(line.split(" ", 2)[2])["link"]["id"] for line in lines) == sorted(link_ids)

        body = b'{"id":"evt_forged","type":"link.deleted","data":{}}'
        forged = signing.signature_headers(signing.new_secret(), "evt_forged", datetime.now(UTC), body)
        answer = httpx.post(f"http://127.0.0.1:{port}/hooks", content=body, headers=forged)
        assert answer.status_code == 400
        assert "refused a delivery" in wait_for_text(err, "refused")
        assert httpx.post(f"http://127.0.0.1:{port}/hooks", content=b"{}").status_code == 400

        replay_id = lines[0].split(" ", 1)[0]
        replayed = signing.signature_headers(created.secret, replay_id, datetime.now(UTC), body)
        assert httpx.post(f"http://127.0.0.1:{port}/hooks", content=body, headers=replayed).status_code == 204
        wait_for_text(out, f"{replay_id} again")
    finally:
        process.terminate()
        process.wait(timeout=10)
    missing = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env={k: v for k, v in os.environ.items() if k != "WEBHOOK_SECRET"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert missing.returncode == 2 and "WEBHOOK_SECRET" in missing.stderr
