"""One TLS context of each kind for the whole test process, instead of one per httpx client.

httpx builds a new ssl.SSLContext for every Client it makes, and building one parses certifi's whole CA bundle (about
35 ms of CPU). The tests make thousands of clients: every httpx.get/post, every test's client of a live server, and two
outgoing clients (webhooks, reporters' key sets) in each in-process live server. Profiled, that was a quarter of the
suite's main-thread time. share() makes httpx hand out one context per (verify, trust_env, CA env) instead: each one
is exactly the context httpx would have built, so certificates are checked the same way. A context that a caller
passes in (verify=<SSLContext>, as the TLS tests do) is still used as given, and cert= still gets a fresh one.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any

import httpx
import httpx._config
import httpx._transports.default

_build = httpx._config.create_ssl_context


@functools.cache
def _shared(verify: bool, trust_env: bool, ca_file: str | None, ca_dir: str | None) -> ssl.SSLContext:
    # httpx reads SSL_CERT_FILE / SSL_CERT_DIR itself when trust_env is set; they are part of the key so that a test
    # that sets them gets the context they ask for.
    return _build(verify=verify, trust_env=trust_env)


def create_ssl_context(
    verify: ssl.SSLContext | str | bool = True, cert: Any = None, trust_env: bool = True
) -> ssl.SSLContext:
    if isinstance(verify, bool) and cert is None:
        ca_file = os.environ.get("SSL_CERT_FILE") if trust_env else None
        ca_dir = os.environ.get("SSL_CERT_DIR") if trust_env else None
        return _shared(verify, trust_env, ca_file, ca_dir)
    return _build(verify=verify, cert=cert, trust_env=trust_env)


def share() -> None:
    """From now on, in this process, httpx reuses its TLS contexts (see the module's docstring)."""
    for module in (httpx, httpx._config, httpx._transports.default):
        module.create_ssl_context = create_ssl_context  # type: ignore[attr-defined]
