"""Signing secrets: Standard Webhooks signatures that fail on any changed byte; secrets sealed at rest."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from token_broker.net import signing

BODY = json.dumps({"id": "evt_0123456789abcdef", "type": "link.created", "data": {"link": {"slug": "é"}}}).encode()


def signed(secret: str, body: bytes = BODY) -> dict[str, str]:
    return signing.signature_headers(secret, "evt_0123456789abcdef", datetime.now(UTC), body)


def test_the_workers_signing_is_the_packages_own() -> None:
    body = json.dumps({"data": {"slug": "é€😀", "n": 1}}, ensure_ascii=False).encode("utf-8")
    for _ in range(20):
        secret = signing.new_secret()
        moment = datetime.fromtimestamp(1_700_000_000 + len(secret), UTC)
        expected = Webhook(secret).sign("evt_ü1", moment, body.decode("utf-8"))
        assert signing.sign(signing.signing_key(secret), "evt_ü1", int(moment.timestamp()), body) == expected


def changed(text: str, index: int) -> str:
    replacement = "0" if text[index] != "0" else "1"
    return text[:index] + replacement + text[index + 1 :]


def test_a_signature_verifies_with_the_standard_library_of_the_spec() -> None:
    secret = signing.new_secret()
    headers = signed(secret)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert len(base64.b64decode(headers["webhook-signature"][3:])) == 32
    assert signing.verify(secret, headers, BODY)["type"] == "link.created"


def test_secrets_have_the_whsec_form_and_enough_entropy() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert signing.new_secret() != secret


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp"])
def test_every_changed_byte_of_id_or_timestamp_fails(header: str) -> None:
    secret = signing.new_secret()
    headers = signed(secret)
    for index in range(len(headers[header])):
        tampered = {**headers, header: changed(headers[header], index)}
        with pytest.raises(WebhookVerificationError):
            signing.verify(secret, tampered, BODY)


def test_every_changed_byte_of_the_body_fails() -> None:
    secret = signing.new_secret()
    headers = signed(secret)
    for index in range(len(BODY)):
        for flipped in (BODY[index] ^ 0x01, BODY[index] ^ 0x80):  # the second makes invalid UTF-8 too
            tampered = BODY[:index] + bytes([flipped]) + BODY[index + 1 :]
            with pytest.raises(WebhookVerificationError):
                signing.verify(secret, headers, tampered)


def test_another_secret_missing_headers_or_garbage_fail() -> None:
    secret = signing.new_secret()
    headers = signed(secret)
    with pytest.raises(WebhookVerificationError):
        signing.verify(signing.new_secret(), headers, BODY)
    for name in headers:
        with pytest.raises(WebhookVerificationError):
            signing.verify(secret, {key: value for key, value in headers.items() if key != name}, BODY)
    for garbage in ("v1", "v1,@@@", "nonsense", "v2," + headers["webhook-signature"][3:]):
        with pytest.raises(WebhookVerificationError):
            signing.verify(secret, {**headers, "webhook-signature": garbage}, BODY)


def test_an_old_timestamp_fails_even_when_signed() -> None:
    secret = signing.new_secret()
    old = signing.signature_headers(secret, "evt_x", datetime(2020, 1, 1, tzinfo=UTC), BODY)
    with pytest.raises(WebhookVerificationError):
        signing.verify(secret, old, BODY)


def test_sealed_secrets_open_only_with_the_same_key_and_hook() -> None:
    secret = signing.new_secret()
    sealed = signing.seal("server key one, long enough", "hook_A", secret)
    assert secret not in sealed and secret[6:] not in sealed
    assert signing.seal("server key one, long enough", "hook_A", secret) != sealed  # a fresh nonce each time
    assert signing.unseal("server key one, long enough", "hook_A", sealed) == secret
    with pytest.raises(signing.SecretUnreadable):
        signing.unseal("server key two, long enough", "hook_A", sealed)
    with pytest.raises(signing.SecretUnreadable):
        signing.unseal("server key one, long enough", "hook_B", sealed)
    for broken in ("", "v1.", "v1.!!!", "v0." + sealed[3:], sealed[:-4] + "AAAA"):
        with pytest.raises(signing.SecretUnreadable):
            signing.unseal("server key one, long enough", "hook_A", broken)
