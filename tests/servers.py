"""Real server processes on 127.0.0.1 for tests: started, awaited until healthy, and always stopped."""

from __future__ import annotations

import os
import shutil
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


@contextmanager
def own_redis(folder: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server of the test's own on 127.0.0.1:`port`, in the foreground, so that the test can stop and start
    it."""
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed: scripts/test installs it"
    server = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=10)


def command_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, **CHEAP_HASHING_ENV, "TOKEN_BROKER_DATABASE_URL": database_url, **extra}
    if not database_url.startswith("postgres"):
        env.pop("TOKEN_BROKER_SECRET_KEY", None)
    return env


def console_script() -> str:
    return str(Path(sys.executable).with_name("token-broker"))


@contextmanager
def running_server(
    env: Mapping[str, str], log_path: Path, *extra_args: str, script: str | None = None, cwd: Path | None = None
) -> Iterator[str]:
    """`token-broker serve` (this environment's, or `script`) on a free port; yields its base URL. Its output goes to
    log_path."""
    with serving(env, log_path, *extra_args, script=script, cwd=cwd) as (base, _process):
        yield base


@contextmanager
def serving(
    env: Mapping[str, str], log_path: Path, *extra_args: str, script: str | None = None, cwd: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`token-broker serve` (this environment's, or `script`) on a free port; yields its base URL and its process
    (to read its memory, for instance)."""
    port = free_port()
    env = {"TOKEN_BROKER_ISSUER": f"http://127.0.0.1:{port}", **env}
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            [script or console_script(), "serve", "--port", str(port), *extra_args],
            env=dict(env),
            cwd=cwd,
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
