"""Reports that are refused, each with its error, while a live key they name keeps working: unsigned, badly signed,
signed by an unknown key, replayed, oversized, not JSON, or naming tokens of the wrong shape."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from tests.live import LiveServer
from tests.makers import Keys
from tests.scanning.keysets import REPORT_PATH, KeySetServer, SigningKey, body_of, match, send
from tests.support import Team
from token_broker import credentials
from token_broker.credentials import CredentialKind
from token_broker.services import keys
from token_broker.store.link_models import OutboxEvent
from token_broker.store.models import AuditEvent


@pytest.fixture
def leaked(make: Keys) -> str:
    key = make.workspace_key(name="Reported")
    assert key.plaintext is not None
    return key.plaintext


def assert_nothing_changed(live: LiveServer, team: Team, token: str) -> None:
    assert httpx.get(f"{live.base_url}/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert all(view.status == "active" for view in keys.list_keys(live.resources.database, team.admin, team.account_id))
    with live.resources.database.read() as session:
        audited = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "credential.leaked")
        told = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "credential.leaked")
        assert session.scalar(audited) == 0 and session.scalar(told) == 0


def refused(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code and answer.json()["message"]


def test_unsigned_reports(live: LiveServer, team: Team, leaked: str, signing_key: SigningKey) -> None:
    body = body_of(match(leaked))
    url = live.base_url + REPORT_PATH
    refused(httpx.post(url, content=body), 401, "missing_signature")
    only_id = {"Github-Public-Key-Identifier": signing_key.identifier}
    refused(httpx.post(url, content=body, headers=only_id), 401, "missing_signature")
    only_signature = {"Github-Public-Key-Signature": signing_key.sign(body)}
    refused(httpx.post(url, content=body, headers=only_signature), 401, "missing_signature")
    assert leaked not in httpx.post(url, content=body).text
    assert_nothing_changed(live, team, leaked)


def test_bad_signatures(live: LiveServer, team: Team, leaked: str, signing_key: SigningKey) -> None:
    body = body_of(match(leaked))
    impostor = SigningKey(identifier=signing_key.identifier)  # GitHub's key id, someone else's private key
    refused(send(live.base_url, impostor, body), 401, "invalid_signature")
    other_body = body_of(match(leaked, url="https://example.com/elsewhere"))
    refused(send(live.base_url, signing_key, body, **{"Github-Public-Key-Signature": signing_key.sign(other_body)}),
            401, "invalid_signature")  # fmt: skip
    refused(send(live.base_url, signing_key, body, **{"Github-Public-Key-Signature": "not base64!"}),
            401, "invalid_signature")  # fmt: skip
    refused(send(live.base_url, signing_key, body, **{"Github-Public-Key-Signature": "AAAA"}), 401, "invalid_signature")
    # The signature covers the raw bytes: the same JSON re-serialised with other spacing does not verify.
    respaced = json.dumps(json.loads(body)).encode()
    refused(send(live.base_url, signing_key, respaced, **{"Github-Public-Key-Signature": signing_key.sign(body)}),
            401, "invalid_signature")  # fmt: skip
    assert_nothing_changed(live, team, leaked)


def test_unknown_key_identifiers(live: LiveServer, team: Team, leaked: str, key_set: KeySetServer,
                                signing_key: SigningKey) -> None:  # fmt: skip
    stranger = SigningKey()
    for _ in range(5):
        refused(send(live.base_url, stranger, body_of(match(leaked))), 401, "unknown_key_identifier")
    refused(
        send(live.base_url, SigningKey(identifier="x" * 500), body_of(match(leaked))), 401, "unknown_key_identifier"
    )
    assert key_set.fetches == 1  # made-up identifiers do not make the broker fetch the key set again and again
    assert_nothing_changed(live, team, leaked)
    # GitHub's own reports still get through while someone sprays made-up identifiers.
    unknown = credentials.generate(CredentialKind.WORKSPACE_KEY).plaintext
    answer = send(live.base_url, signing_key, body_of(match(unknown)))
    assert answer.status_code == 200 and answer.json()[0]["label"] == "false_positive"


def test_a_replayed_report_is_refused(live: LiveServer, team: Team, make: Keys, signing_key: SigningKey) -> None:
    key = make.workspace_key(name="Replayed")
    assert key.plaintext is not None
    body = body_of(match(key.plaintext))
    first = send(live.base_url, signing_key, body)
    assert first.status_code == 200 and first.json()[0]["label"] == "true_positive"
    with live.resources.database.read() as session:
        before = session.scalar(select(func.count()).select_from(AuditEvent))
    refused(send(live.base_url, signing_key, body), 401, "replayed_report")
    with live.resources.database.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == before


def test_oversized_reports(live: LiveServer, team: Team, leaked: str, signing_key: SigningKey) -> None:
    big = body_of(match(leaked, url="https://github.com/" + "a" * 4000)) + b" " * (1024 * 1024)
    refused(send(live.base_url, signing_key, big), 413, "payload_too_large")
    many = body_of(*[match(leaked)] * 1001)
    refused(send(live.base_url, signing_key, many), 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds while reading
        yield big[: len(big) // 2]
        yield big[len(big) // 2 :]

    streamed = httpx.post(live.base_url + REPORT_PATH, content=chunks(), headers=signing_key.headers(big), timeout=60)
    assert "content-length" not in streamed.request.headers
    refused(streamed, 413, "payload_too_large")
    assert_nothing_changed(live, team, leaked)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe", b'{"token": "x"}', b"[1]", b'[{"type": "t"}]', b'[{"token": 7, "type": "t"}]',
     b'[{"token": "nim_key_short", "type": "t"}]', b"[" * 100_000 + b"]" * 100_000],
)  # fmt: skip
def test_malformed_reports(live: LiveServer, team: Team, leaked: str, signing_key: SigningKey, body: bytes) -> None:
    refused(send(live.base_url, signing_key, body), 400, "malformed_report")
    assert_nothing_changed(live, team, leaked)


def test_one_token_of_the_wrong_shape_refuses_the_whole_report(live: LiveServer, team: Team, leaked: str,
                                                              signing_key: SigningKey) -> None:  # fmt: skip
    cases = [
        {"token": leaked + "x", "type": "t"},
        {"token": " " + leaked, "type": "t"},
        {"token": leaked.replace("nim_key_", "nim_zzz_"), "type": "t"},
        {"token": leaked, "type": ""},
        {"token": leaked, "type": "t", "url": 5},
    ]
    for bad in cases:
        refused(send(live.base_url, signing_key, body_of(match(leaked), bad)), 400, "malformed_report")
    assert_nothing_changed(live, team, leaked)


def test_the_endpoint_takes_only_post(live: LiveServer) -> None:
    answer = httpx.get(live.base_url + REPORT_PATH)
    assert answer.status_code == 405 and answer.json()["error"] == "method_not_allowed"
