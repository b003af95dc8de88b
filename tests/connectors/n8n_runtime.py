"""The real n8n (the pinned release scripts/test installs) on 127.0.0.1, driven through its own REST API as its editor
does: owner setup, credentials, the OAuth2 flow, workflows, activation and executions. The connector package is
installed the way n8n installs a community package: the `npm pack` tarball unpacked into
`<N8N_USER_FOLDER>/.n8n/nodes/node_modules/<name>`, its dev, peer and optional dependencies dropped from its
package.json, then `npm install` there with n8n's own flags."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.connectors.platform_tools import n8n_home, node24, node24_env, packed_n8n_package, run

STARTUP_SECONDS = 240
EXECUTION_SECONDS = 120
OWNER = {"email": "owner@n8n.example", "firstName": "Ada", "lastName": "Owner", "password": "Broker-test-1"}
PACKAGE = "n8n-nodes-nim"
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], seconds: float, log: Path | None = None) -> T:
    """Polls `probe` until it answers something other than None; fails after `seconds` saying what it waited for."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise AssertionError(f"waited {seconds} s for {what}\n{tail}")
        time.sleep(0.25)


def unflatten(text: str) -> Any:
    """n8n stores execution data with the `flatted` format: a JSON array whose first entry is the value, where every
    string inside an object or array is the index of another entry (and a string entry is a plain string)."""
    table = json.loads(text)
    done: dict[int, Any] = {}

    def revive(index: int) -> Any:
        if index in done:
            return done[index]
        value = table[index]
        if isinstance(value, list):
            items: list[Any] = []
            done[index] = items
            items.extend(revive(int(item)) if isinstance(item, str) else item for item in value)
            return items
        if isinstance(value, dict):
            fields: dict[str, Any] = {}
            done[index] = fields
            fields.update({key: revive(int(item)) if isinstance(item, str) else item for key, item in value.items()})
            return fields
        return value

    return revive(0)


def install_package(user_folder: Path, work: Path) -> Path:
    """The connector, packed and installed as n8n's CommunityPackagesService.downloadPackage does."""
    unpacked = packed_n8n_package(work)
    nodes = user_folder / ".n8n" / "nodes"
    target = nodes / "node_modules" / PACKAGE
    target.parent.mkdir(parents=True)
    shutil.copytree(unpacked, target)
    manifest = json.loads((target / "package.json").read_text(encoding="utf-8"))
    for field in ("devDependencies", "peerDependencies", "optionalDependencies"):
        manifest.pop(field, None)
    (target / "package.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    flags = ["--audit=false", "--fund=false", "--bin-links=false", "--install-strategy=shallow"]
    flags += ["--ignore-scripts=true", "--package-lock=false", "--offline"]
    installed = run(["npm", "install", *flags], target, node24_env(), timeout=120)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    (nodes / "package.json").write_text(
        json.dumps({"name": "installed-nodes", "private": True, "dependencies": {PACKAGE: manifest["version"]}}),
        encoding="utf-8",
    )
    return target


def n8n_env(user_folder: Path, port: int) -> dict[str, str]:
    base = f"http://127.0.0.1:{port}"
    return node24_env(
        N8N_USER_FOLDER=str(user_folder),
        N8N_PORT=str(port),
        N8N_LISTEN_ADDRESS="127.0.0.1",
        N8N_HOST="127.0.0.1",
        N8N_PROTOCOL="http",
        N8N_EDITOR_BASE_URL=base,
        N8N_WEBHOOK_URL=f"{base}/",
        N8N_SECURE_COOKIE="false",
        N8N_ENCRYPTION_KEY=secrets.token_hex(16),
        N8N_USER_MANAGEMENT_JWT_SECRET=secrets.token_hex(16),
        N8N_COMMUNITY_PACKAGES_ENABLED="true",
        N8N_COMMUNITY_PACKAGES_REINSTALL_MISSING="false",
        N8N_UNVERIFIED_PACKAGES_ENABLED="true",
        N8N_DIAGNOSTICS_ENABLED="false",
        N8N_VERSION_NOTIFICATIONS_ENABLED="false",
        N8N_TEMPLATES_ENABLED="false",
        N8N_PERSONALIZATION_ENABLED="false",
        N8N_PUBLIC_API_DISABLED="true",
        N8N_RUNNERS_ENABLED="false",
        N8N_LICENSE_AUTO_RENEW_ENABLED="false",
        N8N_HIRING_BANNER_ENABLED="false",
        N8N_LOG_LEVEL="info",
        N8N_LOG_OUTPUT="console",
        DB_TYPE="sqlite",
        EXECUTIONS_MODE="regular",
        GENERIC_TIMEZONE="UTC",
        # Nothing leaves the machine: any request n8n makes to another host goes to a closed local port.
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )


class N8n:
    """One running n8n, signed in as its owner (the cookie jar of `client` holds the session)."""

    def __init__(self, base_url: str, log: Path) -> None:
        self.base_url, self.log = base_url, log
        self.client = httpx.Client(base_url=base_url, timeout=60, headers={"browser-id": str(uuid.uuid4())})

    def rest(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.client.request(method, f"/rest{path}", **kwargs)
        assert answer.status_code == 200, f"{method} {path}: {answer.status_code} {answer.text[:2000]}"
        return answer.json().get("data")

    def set_up_owner(self) -> None:
        self.rest("POST", "/owner/setup", json=OWNER)
        self.rest("POST", "/login", json={"emailOrLdapLoginId": OWNER["email"], "password": OWNER["password"]})

    def node_types(self) -> set[str]:
        answer = self.client.get("/types/nodes.json")
        assert answer.status_code == 200, answer.text[:500]
        return {entry["name"] for entry in answer.json()}

    # Credentials and the OAuth2 flow.

    def create_credential(self, name: str, type_: str, data: dict[str, Any]) -> dict[str, str]:
        made = self.rest("POST", "/credentials", json={"name": name, "type": type_, "data": data})
        return {"id": made["id"], "name": made["name"]}

    def authorize_url(self, credential_id: str) -> str:
        url: str = self.rest("GET", "/oauth2-credential/auth", params={"id": credential_id})
        return url

    def callback(self, query: dict[str, str]) -> httpx.Response:
        return self.client.get("/rest/oauth2-credential/callback", params=query)

    # Workflows and executions.

    def create_workflow(self, name: str, nodes: list[dict[str, Any]], connections: dict[str, Any]) -> dict[str, Any]:
        body = {"name": name, "nodes": nodes, "connections": connections, "settings": {}}
        workflow: dict[str, Any] = self.rest("POST", "/workflows", json=body)
        return workflow

    def workflow(self, workflow_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.rest("GET", f"/workflows/{workflow_id}")
        return found

    def activate(self, workflow_id: str) -> dict[str, Any]:
        version = self.workflow(workflow_id)["versionId"]
        answer = self.client.post(f"/rest/workflows/{workflow_id}/activate", json={"versionId": version})
        assert answer.status_code == 200, answer.text[:2000]
        activated: dict[str, Any] = answer.json()["data"]
        return activated

    def deactivate(self, workflow_id: str) -> dict[str, Any]:
        answer = self.client.post(f"/rest/workflows/{workflow_id}/deactivate", json={})
        assert answer.status_code == 200, answer.text[:2000]
        deactivated: dict[str, Any] = answer.json()["data"]
        return deactivated

    def run(self, workflow_id: str, trigger: str) -> dict[str, Any]:
        """A manual run from `trigger`, awaited; answers the execution with its data unflattened."""
        started = self.rest("POST", f"/workflows/{workflow_id}/run", json={"triggerToStartFrom": {"name": trigger}})
        return self.finished(str(started["executionId"]))

    def finished(self, execution_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            found: dict[str, Any] = self.rest("GET", f"/executions/{execution_id}")
            return found if found.get("finished") or found.get("status") in ("success", "error", "crashed") else None

        execution = wait_for(f"execution {execution_id} to finish", done, EXECUTION_SECONDS, self.log)
        if isinstance(execution.get("data"), str):
            execution["data"] = unflatten(execution["data"])
        return execution

    def executions(self, workflow_id: str) -> list[dict[str, Any]]:
        found = self.rest("GET", "/executions", params={"filter": json.dumps({"workflowId": workflow_id})})
        results: list[dict[str, Any]] = found["results"]
        return results


def output_of(execution: dict[str, Any], node: str) -> list[dict[str, Any]]:
    """The items a node produced in an execution (its first run, first output)."""
    result = execution["data"]["resultData"]
    assert "error" not in result, f"the execution failed: {result['error']}"
    return [item["json"] for item in result["runData"][node][0]["data"]["main"][0]]


def error_of(execution: dict[str, Any]) -> str:
    error = execution["data"]["resultData"].get("error")
    assert error, f"the execution did not fail: {execution['data']['resultData']}"
    return f"{error.get('message', '')} {error.get('description') or ''}"


@contextmanager
def running_n8n(work: Path, port: int) -> Iterator[N8n]:
    """n8n started on 127.0.0.1:port with the package installed, owner set up and signed in; stopped afterwards."""
    user_folder = work / "user"
    install_package(user_folder, work / "packed")
    log = work / "n8n.log"
    entry = n8n_home() / "n8n" / "bin" / "n8n"
    with (
        log.open("w") as output,
        subprocess.Popen(
            [str(node24()), str(entry), "start"],
            cwd=work,
            env=n8n_env(user_folder, port),
            stdout=output,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        n8n = N8n(f"http://127.0.0.1:{port}", log)
        try:

            def ready() -> bool | None:
                if process.poll() is not None:
                    raise AssertionError(f"n8n exited with {process.returncode}:\n{log.read_text()[-4000:]}")
                try:
                    return True if n8n.client.get("/healthz/readiness").status_code == 200 else None
                except httpx.TransportError:
                    return None

            wait_for("n8n to be ready", ready, STARTUP_SECONDS, log)
            n8n.set_up_owner()
            yield n8n
        finally:
            n8n.client.close()
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
