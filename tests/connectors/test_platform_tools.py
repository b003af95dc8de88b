"""The platforms' own checks, run on the connectors with the pinned tools scripts/test installs: n8n's linter
(`n8n-node lint`), n8n's community-package scanner (what n8n runs before verifying a package) and Zapier's validator
(`zapier-platform validate --without-style`). Each must be clean: no error and no warning. Their output goes
straight into the test log."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.connectors.connectors import CONNECTORS
from tests.connectors.platform_tools import (
    copy_sources,
    node24,
    node24_env,
    node_cli,
    packed_n8n_package,
    run,
    scanner,
    zapier_cli,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def shown(result: subprocess.CompletedProcess[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The tool's output without colours, written straight to the test log (not captured), and returned."""
    text = ANSI.sub("", f"{result.stdout}\n{result.stderr}").strip()
    with capsys.disabled():
        print(f"\n--- {' '.join(Path(arg).name for arg in result.args[1:3])}\n{text}\n---")
    return text


def test_n8n_node_lint_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`n8n-node lint` runs the package's own eslint.config.mjs (n8n's default) with the linter's dependencies."""
    package = copy_sources(tmp_path / "package")
    (package / "node_modules").symlink_to(node_cli(), target_is_directory=True)
    result = run([str(node24()), str(node_cli() / ".bin" / "n8n-node"), "lint"], package, node24_env())
    output = shown(result, capsys)
    assert result.returncode == 0, output
    assert not re.search(r"\b(error|warning)\b", output.replace("n8n-node lint", "")), output


def test_n8n_community_package_scanner_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packed = packed_n8n_package(tmp_path / "packed")
    sources = copy_sources(tmp_path / "sources")
    script = Path(__file__).with_name("scan_n8n_package.mjs")
    entry = scanner() / "@n8n" / "scan-community-package" / "scanner" / "scanner.mjs"
    result = run([str(node24()), str(script), str(entry), str(sources), str(packed)], tmp_path, node24_env())
    output = shown(result, capsys)
    assert result.returncode == 0, output
    assert output.count("passed") == 2 and "FAILED" not in output, output


def test_zapier_validate_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    """Offline: no style check (that one asks Zapier's servers), analytics off, and Zapier's API pointed at a closed
    local port so nothing leaves the machine."""
    app = CONNECTORS / "zapier"
    env = node24_env(DISABLE_ZAPIER_ANALYTICS="1", ZAPIER_BASE_ENDPOINT="http://127.0.0.1:9")
    cli = zapier_cli() / ".bin" / "zapier-platform"
    result = run([str(node24()), str(cli), "validate", "--without-style"], app, env)
    output = shown(result, capsys)
    assert result.returncode == 0, output
    assert "No structural errors found" in output and "This project is structurally sound!" in output, output
