"""Hook signing secrets: made, sealed at rest, and used to sign deliveries as Standard Webhooks asks.

A secret is `whsec_` and the base64 of 32 random bytes. The server has to sign with it for as long as the hook lives,
so it cannot keep only a hash: the store keeps it sealed with AES-256-GCM under a key derived (HKDF-SHA256) from
TOKEN_BROKER_SECRET_KEY, with the hook's public id as associated data, so a sealed secret copied onto another hook
does not open. The plaintext is shown once, when the hook is created. Changing TOKEN_BROKER_SECRET_KEY makes every
sealed secret unreadable; such hooks are disabled at their next delivery (reason `secret_unreadable`).

Signature: `webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`, checked by the
`standardwebhooks` package. The delivery worker signs with `sign` over a key decoded once per hook (`signing_key`), the
same computation as the package's `Webhook.sign` without decoding the secret and the body again for every delivery.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
SEALED_PREFIX = "v1."
_NONCE_BYTES = 12
_HKDF_INFO = b"token-broker webhook signing secrets v1"


class SecretUnreadable(Exception):
    """A sealed secret that this server's secret key does not open."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


@functools.lru_cache(maxsize=4)  # HKDF per delivery cost more than the decryption; the server's key rarely changes
def _sealing_key(server_secret_key: str) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        server_secret_key.encode("utf-8")
    )
    return AESGCM(derived)


def seal(server_secret_key: str, hook_id: str, secret: str) -> str:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = _sealing_key(server_secret_key).encrypt(nonce, secret.encode("ascii"), hook_id.encode("ascii"))
    return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")


def unseal(server_secret_key: str, hook_id: str, sealed: str) -> str:
    if not sealed.startswith(SEALED_PREFIX):
        raise SecretUnreadable("unknown sealing format")
    try:
        raw = base64.b64decode(sealed.removeprefix(SEALED_PREFIX), validate=True)
        opened = _sealing_key(server_secret_key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], hook_id.encode())
    except (InvalidTag, binascii.Error, ValueError):
        raise SecretUnreadable("the secret key does not open this hook's secret") from None
    return opened.decode("ascii")


def signing_key(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for, as Standard Webhooks reads it."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")
    if not key:
        raise SecretUnreadable("empty signing secret")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` and the base64 HMAC-SHA256 of `{message_id}.{timestamp}.{body}` (the body as sent, UTF-8)."""
    digest = hmac.new(key, b"%s.%d.%s" % (message_id.encode("utf-8"), timestamp, body), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(secret: str, message_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt; the timestamp is whole seconds, UTC."""
    seconds = int(timestamp.timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": sign(signing_key(secret), message_id, seconds, body),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> Any:
    """The parsed JSON body when the headers sign it (within 5 minutes of now); WebhookVerificationError otherwise,
    whatever is wrong: missing or malformed headers, a body that is not UTF-8, a bad signature, an old timestamp."""
    try:
        return Webhook(secret).verify(body, dict(headers))
    except WebhookVerificationError:
        raise
    except (ValueError, UnicodeDecodeError, binascii.Error) as error:
        raise WebhookVerificationError(f"malformed webhook: {type(error).__name__}") from None
