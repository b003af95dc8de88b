"""The Zapier app and the n8n package checked with their own toolchains: `npm test` validates the Zapier definition
with zapier-platform-schema and runs its functions through createAppTester against a stand-in broker; `npm run build`
compiles the n8n package with tsc, and its `npm test` drives the compiled nodes the way n8n does."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.connectors.connectors import CONNECTORS

INSTALL = {"zapier": "npm ci", "n8n": "npm ci --ignore-scripts"}


def npm(platform: str, *args: str) -> subprocess.CompletedProcess[str]:
    folder = CONNECTORS / platform
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed: the connectors' checks need Node 20 and npm")
    if not (folder / "node_modules").is_dir():
        pytest.fail(f"{folder} has no node_modules: run `{INSTALL[platform]}` there first (scripts/test does)")
    return subprocess.run(["npm", *args], cwd=folder, capture_output=True, text=True, timeout=240, check=False)


def test_zapier_definition_validates_and_its_functions_behave() -> None:
    result = npm("zapier", "test")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "# fail 0" in result.stdout


def test_n8n_package_compiles() -> None:
    result = npm("n8n", "run", "build")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for built in ("credentials/NimOAuth2Api.credentials.js", "nodes/NimTrigger/NimTrigger.node.js"):
        assert (CONNECTORS / "n8n" / "dist" / built).is_file(), built


def test_n8n_nodes_behave() -> None:
    result = npm("n8n", "test")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "# fail 0" in result.stdout
