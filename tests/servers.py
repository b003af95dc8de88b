"""Real server processes on 127.0.0.1 for tests: started, awaited until healthy, and always stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support import CHEAP_HASHING_ENV

STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def command_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, **CHEAP_HASHING_ENV, "TOKEN_BROKER_DATABASE_URL": database_url, **extra}
    if not database_url.startswith("postgres"):
        env.pop("TOKEN_BROKER_SECRET_KEY", None)
    return env


def console_script() -> str:
    return str(Path(sys.executable).with_name("token-broker"))


@contextmanager
def running_server(env: Mapping[str, str], log_path: Path, *extra_args: str) -> Iterator[str]:
    """`token-broker serve` on a free port; yields its base URL. Its output goes to log_path."""
    with serving(env, log_path, *extra_args) as (base, _process):
        yield base


@contextmanager
def serving(env: Mapping[str, str], log_path: Path, *extra_args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`token-broker serve` on a free port; yields its base URL and its process (to read its memory, for instance)."""
    port = free_port()
    env = {"TOKEN_BROKER_ISSUER": f"http://127.0.0.1:{port}", **env}
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            [console_script(), "serve", "--port", str(port), *extra_args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as server,
    ):
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(base, server, log_path)
            yield base, server
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def wait_until_healthy(base: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not become healthy:\n{log_path.read_text()}")
        time.sleep(0.1)
