"""A disconnect made with the CLI, writing to the same store, is refused by the running server within a second."""

from __future__ import annotations

import json
import subprocess
import time

import httpx

from tests.connect import connect, register
from tests.live import LiveServer
from tests.servers import command_env, console_script
from tests.support import Team


def test_cli_disconnect_reaches_a_running_server(live: LiveServer, team: Team, database_url: str) -> None:
    platform = register(live.resources.database, "zapier")
    tokens = connect(live.base_url, platform, team.account_id)
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.get(f"{live.base_url}/v1/me", headers=auth).status_code == 200
    env = command_env(database_url)

    def cli(*args: str) -> object:
        done = subprocess.run([console_script(), *args, "--json"], env=env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    [listed] = cli("connection", "list", "--workspace", team.account_id)  # type: ignore[misc]
    assert listed["platform"] == "zapier" and listed["status"] == "active"
    assert cli("connection", "disconnect", listed["id"]) == {"id": listed["id"], "status": "disconnected"}
    answered = time.monotonic()
    while time.monotonic() - answered < 1.0:
        time.sleep(0.05)
    answer = httpx.get(f"{live.base_url}/v1/me", headers=auth)
    assert answer.status_code == 401 and answer.json()["error"] == "reconnect_required"
    [after] = cli("connection", "list", "--workspace", team.account_id)  # type: ignore[misc]
    assert after["status"] == "disconnected" and after["disconnected_by"] == "operator"
