"""`python -m benchmarks.refresh_cost [database URL]`: what one refresh grant costs in the serving process, with no
HTTP: statements and transactions per refresh (benchmarks/statement_count.py) and microseconds per refresh (elapsed,
and of this process's CPU, which a busy machine moves less), each a real rotation through the token endpoint's own
call (authlib, the grant, the store).

Without a URL it uses a SQLite file in a scratch folder. BENCH_REFRESHES (default 400) refreshes, BENCH_THREADS
(default 1) at a time. Prints one line per figure; asserts only that every refresh
was answered 200.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import scratch_dir
from benchmarks.speed import SECRET_KEY, prepare
from benchmarks.statement_count import WHAT_IS_COUNTED, count_statements
from token_broker.config import Settings
from token_broker.oauth.factory import build_server
from token_broker.oauth.request_adapter import build_request
from token_broker.services.tokens import TokenLifetimes
from token_broker.store.database import Database

ISSUER = "https://broker.example"
COUNT = int(os.environ.get("BENCH_REFRESHES", "400"))
THREADS = int(os.environ.get("BENCH_THREADS", "1"))  # more than one: refreshes in flight at once, as under load


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{scratch_dir('refresh-cost') / 'refresh.db'}"
    store = prepare(url, COUNT)
    settings = Settings.from_env({"TOKEN_BROKER_SECRET_KEY": SECRET_KEY})
    lifetimes = TokenLifetimes.of(settings.access_seconds(), 90, SECRET_KEY)
    counts = count_statements()
    database = Database(url)
    server = build_server(database, {}, lifetimes)  # manifests matter to the code grant only
    client = {"client_id": store.client_id, "client_secret": store.client_secret}
    headers = {"content-type": "application/x-www-form-urlencoded"}

    def refresh(token: str) -> None:
        pairs = list({"grant_type": "refresh_token", "refresh_token": token, **client}.items())
        request = build_request("POST", ISSUER, "/oauth/token", headers, pairs, True)
        response = server.run(ISSUER, lambda: server.create_token_response(request))
        assert response.status_code == 200, response.body

    refresh(store.refresh[0])  # warm up
    counts.update(statements=0, transactions=0)
    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(THREADS) as pool:  # as the server runs them: each in a worker thread
        list(pool.map(refresh, store.refresh[1:]))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    done = len(store.refresh) - 1
    print(f"database: {database.dialect}, {done} refreshes, {THREADS} at a time")
    print(f"statements per refresh ({WHAT_IS_COUNTED[database.dialect]}): {counts['statements'] / done:.1f}")
    print(f"transactions per refresh: {counts['transactions'] / done:.1f}")
    print(f"microseconds per refresh: {elapsed / done * 1e6:,.0f} elapsed, {cpu / done * 1e6:,.0f} of CPU")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    database.dispose()


if __name__ == "__main__":
    main()
