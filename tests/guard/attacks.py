"""An attacker's tools for the abuse tests: a `token-broker serve` process whose memory can be read, and floods of
requests from other loopback addresses, bounded in count and time."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.servers import command_env, serving

PRODUCTION_HASHING_ENV = {  # argon2-cffi's defaults, as production runs them
    "TOKEN_BROKER_ARGON2_TIME_COST": "3",
    "TOKEN_BROKER_ARGON2_MEMORY_KIB": "65536",
    "TOKEN_BROKER_ARGON2_PARALLELISM": "4",
}


@dataclass
class Served:
    base_url: str
    pid: int

    def memory_kib(self, field_name: str) -> int:
        """VmRSS (now) or VmHWM (peak) of the server process, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field_name} in /proc/{self.pid}/status")

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), once what a test measures is measured: a graceful stop would first hash,
        one by one, the attackers' requests still queued behind the flood (seconds of waiting on nothing asserted);
        killed, those requests end as connection errors."""
        os.kill(self.pid, signal.SIGKILL)


@contextmanager
def serve(database_url: str, log_path: Path, **env: str) -> Iterator[Served]:
    """`token-broker serve` at production argon2 cost, on a free port of 127.0.0.1."""
    environment = command_env(database_url, TOKEN_BROKER_WEBHOOK_WORKER="off", **PRODUCTION_HASHING_ENV, **env)
    with serving(environment, log_path) as (base, server):
        yield Served(base, server.pid)


def client_from(base_url: str, address: str, timeout: float = 60) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 is this machine)."""
    return httpx.Client(base_url=base_url, timeout=timeout, transport=httpx.HTTPTransport(local_address=address))


@dataclass
class Flood:
    """Threads, one per address, each sending `attack(client)` until stopped, `seconds` pass or `count` are sent."""

    base_url: str
    addresses: list[str]
    attack: Callable[[httpx.Client], int]
    seconds: float = 30.0
    count: int = 2000
    statuses: list[int] = field(default_factory=list)
    answered_from: set[str] = field(default_factory=set)  # the addresses the server has answered at least once
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Flood:
        for address in self.addresses:
            thread = threading.Thread(target=self._run, args=(address,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def running(self) -> bool:
        """Whether every attacker is still at it (each has a request out, or is about to send the next)."""
        return not self._stop.is_set() and all(thread.is_alive() for thread in self._threads)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)

    def _run(self, address: str) -> None:
        deadline = time.monotonic() + self.seconds
        with client_from(self.base_url, address) as client:
            for _ in range(self.count):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    self.statuses.append(self.attack(client))
                    self.answered_from.add(address)
                except httpx.HTTPError:
                    self.statuses.append(0)
