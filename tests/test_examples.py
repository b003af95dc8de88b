"""The scripts in examples/ run as their docstrings say, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.live import LiveServer
from tests.makers import Keys

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_call_with_key(live: LiveServer, make: Keys) -> None:
    key = make.workspace_key().plaintext
    done = run_example("call_with_key.py", "https://example.com/docs", TOKEN_BROKER_URL=live.base_url, NIM_API_KEY=key)
    assert done.returncode == 0, done.stderr
    assert "of workspace Acme" in done.stdout and "-> https://example.com/docs" in done.stdout
    refused = run_example("call_with_key.py", TOKEN_BROKER_URL=live.base_url, NIM_API_KEY=key[:-1])
    assert refused.returncode == 1 and "malformed_api_key" in refused.stderr
