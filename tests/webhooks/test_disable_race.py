"""Disabling a connection's hooks while hundreds of its deliveries are queued and some in flight: once the disabling
transaction has committed, no request of those hooks reaches the receiver (a separate process, so its clock readings
are not delayed by this process's threads), and everything queued is cancelled."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from sqlalchemy import update

from tests.servers import free_port
from tests.webhooks.conftest import Partner, make_events, run_worker
from tests.webhooks.test_delivery import statuses
from token_broker.config import Settings
from token_broker.services import webhook_subscriptions
from token_broker.store.database import Database
from token_broker.store.models import utcnow
from token_broker.store.oauth_models import Connection

RECEIVER = textwrap.dedent(
    """
    import sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            arrived = time.monotonic()
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                print(arrived, self.headers["webhook-id"], flush=True)
            time.sleep(0.01)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
    """
)


def test_no_request_reaches_the_receiver_after_the_disabling_commits(
    database: Database, settings: Settings, partner: Partner, tmp_path: Path
) -> None:
    port = free_port()
    script, log = tmp_path / "receiver.py", tmp_path / "received.txt"
    script.write_text(RECEIVER)
    with log.open("w") as out:
        receiver = subprocess.Popen([sys.executable, str(script), str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "ready" not in log.read_text():
            assert time.monotonic() < deadline and receiver.poll() is None, log.read_text()
            time.sleep(0.02)
        webhook_subscriptions.create_hook(
            database, partner.credential, "link.created", f"http://127.0.0.1:{port}/in", settings
        )
        make_events(database, partner.credential, 300)
        committed: list[float] = []

        def disconnect_after_some_deliveries() -> None:
            while sum(1 for line in log.read_text().splitlines() if line != "ready") < 20:
                time.sleep(0.005)
            with database.write() as session:
                now = utcnow()
                session.execute(
                    update(Connection)
                    .where(Connection.id == partner.connection_id)
                    .values(status="disconnected", disconnected_at=now, disconnected_by="usr_admin")
                )
                webhook_subscriptions.disable_hooks_for_connection(session, partner.connection_id, now)
            committed.append(time.monotonic())

        disconnector = threading.Thread(target=disconnect_after_some_deliveries)
        disconnector.start()
        run_worker(database, settings, lambda: bool(committed) and time.monotonic() > committed[0] + 0.5, timeout=60)
        disconnector.join()
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    arrivals = [float(line.split()[0]) for line in log.read_text().splitlines() if line.strip() not in ("", "ready")]
    assert 20 <= len(arrivals) < 300
    assert max(arrivals) < committed[0], f"{sum(a > committed[0] for a in arrivals)} requests arrived afterwards"
    assert "pending" not in statuses(database) and "delivering" not in statuses(database)
    assert statuses(database).count("cancelled") == 300 - statuses(database).count("succeeded")
