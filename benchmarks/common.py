"""Shared parts of the benchmarks: a server process, wrk runs, and printing results.

Benchmarks measure ratios against a baseline taken in the same run, on the same machine, so that a noisy or slow
machine changes both sides alike. They never assert: they print.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select

from token_broker.config import Settings
from token_broker.services import outbox, webhook_subscriptions
from token_broker.services.verification import VerifiedCredential
from token_broker.store.database import Database
from token_broker.store.models import Workspace

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_healthy(server: subprocess.Popen[bytes], base: str, log: Path, what: str) -> None:
    """Waits (60 s at most) until `base`/healthz answers 200; raises with the process's log if it exits first."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log.read_text()}")
        time.sleep(0.1)


@contextmanager
def uvicorn_process(app: str, env: dict[str, str], log: Path, workers: int = 1,
                    core: str | None = "0") -> Iterator[str]:  # fmt: skip
    """uvicorn serving `app` (an import string) with `workers` processes, pinned to `core` when taskset is there
    (core=None: wherever the system puts them)."""
    with uvicorn_server(app, env, log, workers, core) as (base, _pid):
        yield base


@contextmanager
def uvicorn_server(app: str, env: dict[str, str], log: Path, workers: int = 1,
                   core: str | None = "0") -> Iterator[tuple[str, int]]:  # fmt: skip
    """uvicorn_process, also yielding the server's process id (taskset execs it, so the pid is uvicorn's own)."""
    port = free_port()
    # as `token-broker serve` runs uvicorn: no access log, no Server header, no forwarded headers of uvicorn's own
    command = [sys.executable, "-m", "uvicorn", app, "--factory", "--port", str(port), "--log-level", "warning",
               "--no-access-log", "--no-server-header", "--no-proxy-headers"]  # fmt: skip
    if workers > 1:
        command += ["--workers", str(workers)]
    with _server(command, port, env, log, core) as served:
        yield served


@contextmanager
def serve_process(env: dict[str, str], log: Path, workers: int = 1) -> Iterator[tuple[str, int]]:
    """`token-broker serve --workers N`, as operators run several workers (it listens on a socket of its own making,
    not uvicorn's), not pinned; yields its base URL and the serving process's id (the workers' parent)."""
    port = free_port()
    console_script = str(Path(sys.executable).with_name("token-broker"))
    command = [console_script, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with _server(command, port, env, log, core=None) as served:
        yield served


@contextmanager
def _server(command: list[str], port: int, env: dict[str, str], log: Path,
            core: str | None) -> Iterator[tuple[str, int]]:  # fmt: skip
    if core is not None and shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", core, *command]
    env = {"TOKEN_BROKER_ISSUER": f"http://127.0.0.1:{port}", **os.environ, **env}
    with log.open("w") as output, subprocess.Popen(command, env=env, stdout=output,
                                                    stderr=subprocess.STDOUT) as server:  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_healthy(server, base, log, "the benchmark server")
            yield base, server.pid
        finally:
            server.terminate()
            server.wait(timeout=30)


@contextmanager
def receiver_process(log: Path) -> Iterator[tuple[str, int]]:
    """The benchmarks' webhook receiver (benchmarks/receiver.py) on a free port, not pinned; yields its base URL and
    process id."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.receiver", str(port)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("w") as output, subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT,
                                                    cwd=ROOT) as server:  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_healthy(server, base, log, "the webhook receiver")
            yield base, server.pid
        finally:
            server.terminate()
            server.wait(timeout=30)


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    non_2xx: int
    requests: int  # answered during the run, as wrk counts them ("N requests in")


def wrk(url: str, seconds: int, connections: int, headers: dict[str, str] | None = None,
        script: Path | None = None, script_args: tuple[str, ...] = ()) -> WrkResult:  # fmt: skip
    """Run wrk from another process (pinned to the other core when there is one)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", "1", *command]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non_2xx_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return WrkResult(
        requests_per_second=rps,
        latency_p50_ms=_latency(output, "50%"),
        latency_p99_ms=_latency(output, "99%"),
        non_2xx=int(non_2xx_match.group(1)) if non_2xx_match else 0,
        requests=requests,
    )


def _latency(output: str, percentile: str) -> float:
    match = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", output)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for benchmarks: scripts/bench installs it with apt-get")


def scratch_dir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"token-broker-bench-{name}-"))


def report(title: str, rows: list[tuple[str, str]], ratios: list[tuple[str, float, float | None]]) -> None:
    print(f"\n{title}")
    width = max(len(label) for label, _ in rows + [(r[0], "") for r in ratios])
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")
    for label, ratio, aim in ratios:
        verdict = "" if aim is None else f"  ({'meets' if ratio >= aim else 'BELOW'} the aim of {aim})"
        print(f"  {label.ljust(width)}  {ratio:.3f}{verdict}")
    print(json.dumps({"benchmark": title, "ratios": {label: round(ratio, 4) for label, ratio, _ in ratios}}))


def seed_webhook_work(
    database: Database,
    owner: VerifiedCredential,
    account_id: str,
    receiver: str,
    settings: Settings,
    hooks: int,
    events: int,
) -> None:
    """`hooks` hooks on link.created pointing at `receiver` (benchmarks/receiver.py, told each hook's secret so that
    it counts only deliveries signed with it), and `events` such events in the outbox: hooks x events deliveries for a
    worker to fan out and send."""  # fmt: skip
    secrets = {}
    for index in range(hooks):
        path = f"/hook/{index}"
        made = webhook_subscriptions.create_hook(database, owner, "link.created", f"{receiver}{path}", settings)
        secrets[path] = made.secret
    httpx.post(f"{receiver}/secrets", json=secrets, timeout=10).raise_for_status()
    with database.write() as session:
        workspace = session.scalars(select(Workspace).where(Workspace.account_id == account_id)).one()
        for index in range(events):
            outbox.add_event(session, workspace, "link.created", {"slug": f"s{index}", "n": index})
