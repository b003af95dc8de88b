"""The package as a new user gets it: the wheel built from this checkout, installed (not editable) into a fresh virtual
environment in a temporary folder, run from there with nothing of the checkout in reach. Its CLI makes a workspace, a
user and a Zapier client; its `token-broker serve` is ready (every platform's manifest loaded from the wheel), and a
whole connect flow (authorization code with PKCE, through sign-in and consent, then the token exchange) gives a
partner install token that calls the workspace API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.connect import CALLBACKS, Platform, connect
from tests.servers import running_server
from tests.support import CHEAP_HASHING_ENV, PASSWORD
from token_broker.scopes import PLATFORMS

ROOT = Path(__file__).resolve().parents[1]
INSTALL_SECONDS = 600


def run(command: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=INSTALL_SECONDS, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def outside_env(database_url: str) -> dict[str, str]:
    """This process's environment without anything that points at the checkout or picks settings for the server."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TOKEN_BROKER_") and name not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    return {**env, **CHEAP_HASHING_ENV, "TOKEN_BROKER_DATABASE_URL": database_url}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh virtual environment holding the wheel built from this checkout."""
    base = tmp_path_factory.mktemp("installed")
    env = outside_env("sqlite:///unused.db")
    dist = base / "dist"
    run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist)], base, env)
    (wheel,) = dist.glob("token_broker-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {path.parent.name for path in (ROOT / "connectors").glob("*/manifest.json")} == set(PLATFORMS)
    for platform in PLATFORMS:
        assert f"token_broker/connectors/{platform}/manifest.json" in names
    assert "token_broker/py.typed" in names
    assert any(name.endswith("dist-info/licenses/LICENSE") for name in names)
    # The new environment gets no pip of its own (ensurepip took a third of this fixture): this environment's pip
    # installs into it (--python), as it would install with its own.
    run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")], base, env)
    bin_dir = base / "venv" / "bin"
    pip = [sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q"]
    run([*pip, str(wheel)], base, env)
    location = run([str(bin_dir / "python"), "-c", "import token_broker; print(token_broker.__file__)"], base, env)
    assert Path(location.strip()).is_relative_to(base / "venv"), location
    return bin_dir


@pytest.mark.timeout(INSTALL_SECONDS + 300)
def test_the_installed_package_connects_zapier_and_serves_the_workspace_api(installed: Path, tmp_path: Path) -> None:
    env = outside_env(f"sqlite:///{tmp_path / 'store.db'}")
    cli = str(installed / "token-broker")

    def tb(*args: str, stdin: str | None = None) -> dict[str, str]:
        found: dict[str, str] = json.loads(run([cli, *args, "--json"], tmp_path, env, stdin))
        return found

    tb("migrate")
    account_id = tb("workspace", "create", "--name", "Acme")["account_id"]
    tb("user", "create", "--email", "admin@acme.example", "--workspace", account_id, "--role", "owner",
       stdin=PASSWORD + "\n")  # fmt: skip
    made = tb("client", "create", "--platform", "zapier", "--redirect-uri", CALLBACKS["zapier"])
    zapier = Platform("zapier", made["client_id"], made["client_secret"], CALLBACKS["zapier"])

    log = tmp_path / "server.log"
    with running_server(env, log, script=cli, cwd=tmp_path) as base:
        ready = httpx.get(f"{base}/readyz", timeout=30)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["manifests"] == dict.fromkeys(PLATFORMS, "ok")

        tokens = connect(base, zapier, account_id)
        assert tokens["account_id"] == account_id and tokens["token_type"] == "Bearer"
        assert set(tokens["scope"].split()) == {"links:read", "links:write", "analytics:read", "hooks:write"}
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        with httpx.Client(base_url=base, headers=bearer, timeout=30) as api:
            me = api.get("/v1/me")
            assert me.status_code == 200, me.text
            assert me.json()["account_id"] == account_id and me.json()["credential"]["platform"] == "zapier"
            created = api.post(f"/v1/workspaces/{account_id}/links", json={"destination": "https://example.com/a"})
            assert created.status_code == 201, created.text
            listed = api.get(f"/v1/workspaces/{account_id}/links")
            assert listed.status_code == 200
            assert [link["id"] for link in listed.json()["data"]] == [created.json()["id"]]
            outside = api.get(f"/v1/workspaces/{account_id}/links/{created.json()['id']}/analytics")
            assert outside.status_code == 403 and outside.json()["error"] == "insufficient_scope"
    assert "no manifest for platform" not in log.read_text()
