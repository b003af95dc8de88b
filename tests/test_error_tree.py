"""The error tree is closed and drives the wire: every error class lives in errors.py, the API document's codes come
from it, and each wire gets its own rendering (the dashboard's pages get HTML, never the API's JSON)."""

from __future__ import annotations

import importlib
import pkgutil

import token_broker
from tests.live import LiveServer
from token_broker.api.openapi import openapi_document
from token_broker.errors import BrokerError, InvalidGrant, NotSignedIn, ReplayedReport, api_error_codes

CODES_BEFORE_THE_TREE_DROVE_THE_DOCUMENT = {
    "missing_api_key", "malformed_api_key", "invalid_api_key", "token_expired", "reconnect_required",
    "api_key_account_mismatch", "insufficient_scope", "ip_not_allowed", "not_found", "invalid_request", "conflict",
    "rate_limited", "payload_too_large", "method_not_allowed", "service_unavailable",
}  # fmt: skip


def _all_subclasses(root: type[BrokerError]) -> set[type[BrokerError]]:
    found: set[type[BrokerError]] = set()
    for child in root.__subclasses__():
        found |= {child, *_all_subclasses(child)}
    return found


def test_every_error_class_is_defined_in_the_tree_module() -> None:
    for module in pkgutil.walk_packages(token_broker.__path__, "token_broker."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    outside = sorted(f"{cls.__module__}.{cls.__name__}" for cls in _all_subclasses(BrokerError))
    assert [name for name in outside if not name.startswith("token_broker.errors.")] == []


def test_the_document_lists_the_codes_of_the_tree() -> None:
    enum = openapi_document("https://broker.example")["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
    assert enum == api_error_codes()
    assert set(enum) >= CODES_BEFORE_THE_TREE_DROVE_THE_DOCUMENT
    for other_wire in (InvalidGrant, NotSignedIn, ReplayedReport):
        assert other_wire.code not in enum or other_wire.code in CODES_BEFORE_THE_TREE_DROVE_THE_DOCUMENT


def test_a_dashboard_page_gets_an_html_error_and_the_api_json(live: LiveServer) -> None:
    with live.client() as client:
        page = client.get("/no-such-page")
        api = client.get("/v1/no-such-endpoint", headers={"Authorization": "Bearer nope"})
        missing = client.get("/api/no-such-endpoint")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<p>" in page.text and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert api.status_code == 401 and api.json()["error"] in api_error_codes()
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
