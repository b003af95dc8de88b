"""Oversized request bodies are refused before anything parses them, declared or chunked, on every path that reads a
body, while a real user keeps signing in; the server's memory stays bounded (read from /proc, a real `serve`)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.browser_forms import sign_in
from tests.servers import command_env, serving
from tests.support import CHEAP_HASHING, PASSWORD, add_member
from token_broker.body_limit import MAX_BODY_BYTES
from token_broker.credentials import SecretHasher
from token_broker.services import workspaces
from token_broker.services.actors import Actor
from token_broker.store.database import Database

MiB = 1024 * 1024
# Without the limit one 192 MiB sign-in raised the server's peak memory by 194 MiB; with it, a few MiB at most.
# Generous, for a busy machine: argon2 (1 MiB here), a few concurrent requests and allocator noise stay far below.
MAX_GROWTH = 48 * MiB


@dataclass
class Server:
    base_url: str
    pid: int

    def peak_memory(self) -> int:
        """VmHWM: the most resident memory the process has had, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with serving(command_env(url), tmp_path / "server.log") as (base, process):
        database = Database(url)
        try:
            account_id = workspaces.create_workspace(database, Actor.operator(), "Acme")
            add_member(database, SecretHasher(CHEAP_HASHING), account_id, "owner", "owner@acme.example")
        finally:
            database.dispose()
        yield Server(base, process.pid)


@dataclass
class Sent:
    status: int | None  # None: the server closed the connection without an answer we could read
    sent: int  # body bytes written before the server stopped taking them


def post_raw(base_url: str, path: str, declared: int | None, total: int, chunk: int = 256 * 1024) -> Sent:
    """POST `total` bytes of form-like junk; with `declared`, as Content-Length (only the headers are sent first);
    without, chunked. Reads the answer while still writing, as an attacker's client would."""
    host, port = base_url.removeprefix("http://").split(":")
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/x-www-form-urlencoded"]
    head.append(f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked")
    received = bytearray()
    with socket.create_connection((host, int(port)), timeout=30) as connection:

        def read() -> None:
            try:
                while data := connection.recv(65536):
                    received.extend(data)
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        sent = 0
        piece = b"a=" + b"x" * (chunk - 2)
        try:
            connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            if declared is not None:
                reader.join(timeout=30)  # the answer comes before any of the body
            while sent < total and reader.is_alive():
                frame = piece if declared is not None else f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                connection.sendall(frame)
                sent += len(piece)
            if declared is None and reader.is_alive():
                connection.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        reader.join(timeout=60)
    status_line = bytes(received).split(b"\r\n", 1)[0].split()
    return Sent(int(status_line[1]) if len(status_line) > 1 else None, sent)


def test_oversized_sign_ins_are_refused_while_the_user_signs_in(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=60) as user:
        assert sign_in(user, "owner@acme.example", PASSWORD).status_code == 303
    before = server.peak_memory()
    outcomes: list[Sent] = []

    def attack() -> None:
        outcomes.append(post_raw(server.base_url, "/login", declared=192 * MiB, total=192 * MiB))
        for _ in range(3):
            outcomes.append(post_raw(server.base_url, "/login", declared=None, total=64 * MiB))

    attacker = threading.Thread(target=attack)
    attacker.start()
    signed_in = 0
    with httpx.Client(base_url=server.base_url, timeout=60) as user:
        while attacker.is_alive() or signed_in < 3:
            user.cookies.clear()
            assert sign_in(user, "owner@acme.example", PASSWORD).status_code == 303
            signed_in += 1
    attacker.join()

    declared, *chunked = outcomes
    assert declared.status == 413 and declared.sent == 0, declared
    for outcome in chunked:
        # Refused long before the 64 MiB were taken: 413 once the body passed the limit, or 400 when the form parser
        # met its one field over the field limit first (the first piece the server read was under the body limit);
        # None when the close overtook the answer.
        assert outcome.status in (400, 413, None) and outcome.sent < 64 * MiB, outcome
    assert any(outcome.status in (400, 413) for outcome in chunked), chunked
    assert server.peak_memory() - before < MAX_GROWTH, (before, server.peak_memory())


@pytest.mark.parametrize(
    ("path", "error", "chunked_status"),
    [
        ("/login", None, 413),
        ("/oauth/authorize", None, 413),
        ("/api/workspaces/acc_x/keys", "payload_too_large", 401),  # not signed in: the body is never read
        ("/v1/workspaces/acc_x/links", "payload_too_large", 401),  # no credential: the body is never read
        ("/oauth/token", "invalid_request", 400),  # the token endpoint wants a Content-Length
    ],
)
def test_every_body_is_bounded(server: Server, path: str, error: str | None, chunked_status: int) -> None:
    declared = post_raw(server.base_url, path, declared=MAX_BODY_BYTES + 1, total=0)
    assert declared.status == 413 and declared.sent == 0, (path, declared)
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        fields = [f"f{index}={'x' * 8000}&".encode() for index in range(MAX_BODY_BYTES // 8000 + 2)]
        answer = client.post(path, content=iter(fields),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert answer.status_code == chunked_status, (path, answer.text)
        if error is not None and chunked_status == 413:
            assert answer.json()["error"] == error
        json_answer = client.post(path, content=b"{" + b" " * MAX_BODY_BYTES + b"}",
                                  headers={"Content-Type": "application/json"})  # fmt: skip
        assert json_answer.status_code == 413, (path, json_answer.text)
        if error is not None:
            assert json_answer.json()["error"] == error


def test_a_form_refused_partway_through_its_body_closes_the_connection(server: Server) -> None:
    """A sign-in form whose first field passes the field limit is refused (400) before the body ends; the server
    then closes the connection instead of reading (and discarding) whatever else the client streams."""
    host, port = server.base_url.removeprefix("http://").split(":")
    head = (f"POST /login HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()  # fmt: skip
    piece = b"a=" + b"x" * (20 * 1024)  # one field over the 16 KiB field limit, the body under the 64 KiB one
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(head + f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        received = bytearray()
        while data := connection.recv(65536):  # the body is not finished: only a close ends this loop
            received.extend(data)
    assert received.startswith(b"HTTP/1.1 400"), bytes(received[:100])
    assert b"connection: close" in bytes(received).lower()


def test_a_sign_in_form_with_too_many_fields_is_refused(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        client.get("/login")
        answer = client.post("/login", content="&".join(f"f{index}=1" for index in range(500)),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert answer.status_code == 400
        multipart = client.post("/login", files={"upload": ("a.txt", b"x" * 10)})
        assert multipart.status_code == 400
        assert sign_in(client, "owner@acme.example", PASSWORD).status_code == 303
