"""`scripts/bench abuse`: what an outsider with a few loopback addresses can do to legitimate callers.

One uvicorn worker (pinned to one core, production argon2 cost, SQLite), wrk on the other core as the legitimate
caller (GET /v1/me with a cached key, 16 connections). For each flood, in turns within one run: the caller alone,
then the caller during the flood, so that each ratio compares figures taken minutes apart on the same machine.

Floods, each from several loopback addresses (127.0.0.2 and up), bounded in count and in time:
  key ids     well-formed wrong secrets for a real key's public id; meanwhile a never-seen real key with that id is
              presented every 0.25 s from another address, and the time until it is accepted is measured;
  token       junk client authentications at /oauth/token, three in four naming the real client's id; meanwhile the real
              client asks every 0.25 s (with a refresh token that does not exist: `invalid_grant` means its client
              authentication got through, `429` that it was locked out);
  sign-ins    anonymous sign-ins with random emails; meanwhile the real user signs in from a clean address each second;
  bodies      oversized form bodies (192 MiB declared, 64 MiB chunked) at /login;
  redirects   GET /r/{slug} as fast as the flooders can.
Per flood: the caller's throughput and p99 latency as ratios to the undisturbed figures, the flood's answers, and the
server's peak resident memory (VmHWM, reset before each flood where the kernel allows it).
Aims: throughput at least 0.8 of undisturbed, a never-seen real key accepted within 2 s, peak memory under 512 MiB.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import select

from benchmarks.common import WrkResult, report, require_wrk, scratch_dir, uvicorn_server, wrk
from token_broker import credentials
from token_broker.app import create_app
from token_broker.config import Settings
from token_broker.credentials import CredentialKind, SecretHasher
from token_broker.services import clients, keys, links, workspaces
from token_broker.services.actors import Actor
from token_broker.services.keys import KeyRequest
from token_broker.store import migrate
from token_broker.store.database import Database
from token_broker.store.models import Workspace

SECONDS = int(os.environ.get("BENCH_SECONDS", "6"))
CONNECTIONS = 16
FLOODERS = 6  # threads, one loopback address each
MAX_REQUESTS_PER_FLOODER = 20_000
UNLIMITED = ["999999999/minute"]
PASSWORD = "benchmark password, long enough"  # noqa: S105 (a throwaway store's user)
EMAIL = "owner@bench.example"
MiB = 1024 * 1024


def bench_app() -> object:
    return create_app(Settings.from_env())


@dataclass
class Fixture:
    url: str
    cached_key: str
    fresh_key: str  # never presented before the key-id flood
    client_id: str
    client_secret: str
    slug: str


def prepare(folder: Path) -> Fixture:
    url = f"sqlite:///{folder / 'bench.db'}"
    database = Database(url)
    migrate.upgrade(database)
    hasher = SecretHasher(Settings.from_env({}).hashing)  # production argon2 cost
    operator = Actor.operator()
    account_id = workspaces.create_workspace(database, operator, "Benchmark")
    workspaces.add_user(database, hasher, operator, EMAIL, PASSWORD, account_id, "owner")
    cached = keys.create_key(database, hasher, operator, account_id, KeyRequest(name="cached", rate_limits=UNLIMITED))
    fresh = keys.create_key(database, hasher, operator, account_id, KeyRequest(name="fresh", rate_limits=UNLIMITED))
    client = clients.register_client(database, operator, "zapier", ["https://zapier.bench/cb"])
    link = links.create_link(database, _workspace_id(database, account_id), "bench", "https://example.com/", "bench")
    database.dispose()
    assert cached.plaintext is not None and fresh.plaintext is not None
    return Fixture(url, cached.plaintext, fresh.plaintext, client.client_id, client.client_secret, link.slug)


def _workspace_id(database: Database, account_id: str) -> int:
    with database.read() as session:
        return session.scalars(select(Workspace.id).where(Workspace.account_id == account_id)).one()


def peak_memory(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak(pid: int) -> None:
    with suppress(OSError):  # "5" resets VmHWM to the current RSS (Linux 4.0+), for our own child process
        Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass
class Flood:
    """Threads, one loopback address each, calling `attack(client, address, index)` until time or count runs out."""

    attack: Callable[[httpx.Client, str, int], int]  # (client, its address, index) -> the status (0: no answer)
    base: str
    answers: Counter[int] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for number in range(FLOODERS):
            thread = threading.Thread(target=self._run, args=(f"127.0.0.{number + 2}",), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, address: str) -> None:
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(base_url=self.base, timeout=30, transport=transport) as client:
            for index in range(MAX_REQUESTS_PER_FLOODER):
                if self.stop.is_set():
                    return
                try:
                    status = self.attack(client, address, index)
                except httpx.HTTPError:
                    status = 0
                with self.lock:
                    self.answers[status] += 1

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def wrong_secret_attack(key_id: str) -> Callable[[httpx.Client, str, int], int]:
    def attack(client: httpx.Client, _address: str, _index: int) -> int:
        wrong = credentials.generate(CredentialKind.WORKSPACE_KEY, public_id=key_id).plaintext
        return client.get("/v1/me", headers={"Authorization": f"Bearer {wrong}"}).status_code

    return attack


def token_attack(real_client_id: str) -> Callable[[httpx.Client, str, int], int]:
    def attack(client: httpx.Client, _address: str, index: int) -> int:
        client_id = f"zapier_{secrets.token_hex(10)}" if index % 4 == 0 else real_client_id
        form = {"grant_type": "refresh_token", "refresh_token": "junk", "client_id": client_id,
                "client_secret": secrets.token_hex(20)}  # fmt: skip
        return client.post("/oauth/token", data=form).status_code

    return attack


def csrf_of(page: str) -> str:
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def sign_in_attack() -> Callable[[httpx.Client, str, int], int]:
    def attack(client: httpx.Client, _address: str, _index: int) -> int:
        if "csrf" not in client.headers:
            client.headers["csrf"] = csrf_of(client.get("/login").text)  # kept beside the session cookie
        form = {"csrf_token": client.headers["csrf"], "email": f"{secrets.token_hex(8)}@random.example",
                "password": secrets.token_hex(12)}  # fmt: skip
        return client.post("/login", data=form).status_code

    return attack


def oversized_post(base: str, address: str, declared: bool, size: int) -> int:
    """One oversized POST /login from `address`, read while writing; the status, or 0 when cut off unanswered."""
    host, port = base.removeprefix("http://").split(":")
    head = f"POST /login HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    head += f"Content-Length: {size}\r\n\r\n" if declared else "Transfer-Encoding: chunked\r\n\r\n"
    piece = b"a=" + b"x" * (256 * 1024 - 2)
    frame = piece if declared else f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    received = bytearray()
    with socket.socket() as connection:
        connection.settimeout(30)
        connection.bind((address, 0))
        connection.connect((host, int(port)))

        def read() -> None:
            with suppress(OSError):
                while data := connection.recv(65536):
                    received.extend(data)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        with suppress(OSError):
            connection.sendall(head.encode())
            sent = 0
            while sent < size and reader.is_alive():
                connection.sendall(frame)
                sent += len(piece)
        reader.join(timeout=30)
    parts = bytes(received).split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def body_attack(base: str) -> Callable[[httpx.Client, str, int], int]:
    def attack(_client: httpx.Client, address: str, index: int) -> int:
        return oversized_post(base, address, declared=index % 2 == 0, size=(192 if index % 2 == 0 else 64) * MiB)

    return attack


def redirect_attack(slug: str) -> Callable[[httpx.Client, str, int], int]:
    def attack(client: httpx.Client, _address: str, _index: int) -> int:
        return client.get(f"/r/{slug}").status_code

    return attack


@dataclass
class Probe:
    """A legitimate caller's side job during a flood, from its own address: `call()` every `every` seconds."""

    call: Callable[[httpx.Client], int]
    base: str
    every: float
    address: str = "127.0.0.200"
    answers: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        transport = httpx.HTTPTransport(local_address=self.address)
        with httpx.Client(base_url=self.base, timeout=30, transport=transport) as client:
            while not self.stop.is_set() and time.monotonic() - started < SECONDS + 30:
                try:
                    status = self.call(client)
                except httpx.HTTPError:
                    status = 0
                self.answers.append((time.monotonic() - started, status))
                self.stop.wait(self.every)

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=60)


@dataclass
class Outcome:
    name: str
    alone: WrkResult
    flooded: WrkResult
    flood: Counter[int]
    peak: int
    note: str


def run_flood(name: str, base: str, pid: int, auth: dict[str, str], flood: Flood, probe: Probe | None,
              note: Callable[[Probe | None], str]) -> Outcome:  # fmt: skip
    alone = wrk(f"{base}/v1/me", SECONDS, CONNECTIONS, auth)
    reset_peak(pid)
    flood.start()
    time.sleep(0.5)  # let the flood build up before the caller measures
    if probe is not None:
        probe.start()
    try:
        flooded = wrk(f"{base}/v1/me", SECONDS, CONNECTIONS, auth)
    finally:
        flood.finish()
        if probe is not None:
            probe.finish()
    return Outcome(name, alone, flooded, flood.answers, peak_memory(pid), note(probe))


def first_accepted(probe: Probe | None) -> str:
    assert probe is not None
    accepted = [at for at, status in probe.answers if status == 200]
    if not accepted:
        return f"never-seen real key NOT accepted in {len(probe.answers)} tries"
    first = probe.answers[0][0]
    return f"never-seen real key accepted after {accepted[0] - first:.2f} s"


def statuses(label: str) -> Callable[[Probe | None], str]:
    def describe(probe: Probe | None) -> str:
        assert probe is not None
        counted = Counter(status for _, status in probe.answers)
        return f"{label}: " + ", ".join(f"{status}x{count}" for status, count in sorted(counted.items()))

    return describe


def main() -> None:
    require_wrk()
    folder = scratch_dir("abuse")
    fixture = prepare(folder)
    env = {"TOKEN_BROKER_DATABASE_URL": fixture.url, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    auth = {"Authorization": f"Bearer {fixture.cached_key}"}
    fresh_id = credentials.parse(fixture.fresh_key).public_id
    with uvicorn_server("benchmarks.abuse:bench_app", env, folder / "server.log") as (base, pid):
        wrk(f"{base}/v1/me", 2, CONNECTIONS, auth)  # warm up: the cached key's one argon2 verification
        basic = httpx.BasicAuth(fixture.client_id, fixture.client_secret)

        def real_client(client: httpx.Client) -> int:
            form = {"grant_type": "refresh_token", "refresh_token": "nim_prt_notarealtoken"}
            return client.post("/oauth/token", data=form, auth=basic).status_code

        def real_user(client: httpx.Client) -> int:
            client.cookies.clear()
            form = {"csrf_token": csrf_of(client.get("/login").text), "email": EMAIL, "password": PASSWORD}
            return client.post("/login", data=form).status_code

        def fresh_key(client: httpx.Client) -> int:
            return client.get("/v1/me", headers={"Authorization": f"Bearer {fixture.fresh_key}"}).status_code

        plans: list[tuple[str, Flood, Probe | None, Callable[[Probe | None], str]]] = [
            ("key ids", Flood(wrong_secret_attack(fresh_id), base), Probe(fresh_key, base, 0.25), first_accepted),
            ("token", Flood(token_attack(fixture.client_id), base), Probe(real_client, base, 0.25),
             statuses("real client")),
            ("sign-ins", Flood(sign_in_attack(), base), Probe(real_user, base, 1.0), statuses("real user")),
            ("bodies", Flood(body_attack(base), base), None, lambda _probe: ""),
            ("redirects", Flood(redirect_attack(fixture.slug), base), None, lambda _probe: ""),
        ]  # fmt: skip
        outcomes = [run_flood(name, base, pid, auth, flood, probe, note) for name, flood, probe, note in plans]
        overall_peak = max(outcome.peak for outcome in outcomes)
    rows: list[tuple[str, str]] = []
    ratios: list[tuple[str, float, float | None]] = []
    for outcome in outcomes:
        answers = ", ".join(f"{status}x{count}" for status, count in sorted(outcome.flood.items()))
        alone, during = outcome.alone, outcome.flooded
        figures = [
            f"{during.requests_per_second:,.0f} req/s during (alone {alone.requests_per_second:,.0f})",
            f"p99 {during.latency_p99_ms:.1f} ms (alone {alone.latency_p99_ms:.1f} ms)",
            f"peak {outcome.peak / MiB:.0f} MiB",
            f"flood answers {answers}",
        ]
        rows.append((outcome.name, ", ".join(figures) + (f"; {outcome.note}" if outcome.note else "")))
        ratios.append((f"{outcome.name}: throughput during/alone", outcome.flooded.requests_per_second
                       / max(outcome.alone.requests_per_second, 1e-9), 0.8))  # fmt: skip
        ratios.append((f"{outcome.name}: p99 during/alone", outcome.flooded.latency_p99_ms
                       / max(outcome.alone.latency_p99_ms, 1e-9), None))  # fmt: skip
    rows.append(("peak memory over all floods", f"{overall_peak / MiB:.0f} MiB (aim: under 512 MiB)"))
    rows.append(("each flood", f"{SECONDS} s, {FLOODERS} addresses, at most {MAX_REQUESTS_PER_FLOODER} requests each"))
    report("abuse", rows, ratios)


if __name__ == "__main__":
    main()
