"""Reporters' public keys and their signatures, as GitHub's secret scanning partner protocol defines them. Pure.

A key set is `{"public_keys": [{"key_identifier", "key", "is_current"}, ...]}`, each key a PEM SubjectPublicKeyInfo
of an ECDSA P-256 key. A report carries the identifier of the key that signed it and a base64 DER ECDSA signature
over the raw request body with SHA-256 (GitHub calls the algorithm ECDSA-NIST-P256V1-SHA256).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger("token_broker.scanning")
MAX_KEY_IDENTIFIER_LENGTH = 200
MAX_SIGNATURE_LENGTH = 512
MAX_KEYS_PER_SET = 100

PublicKey = ec.EllipticCurvePublicKey


class KeySetError(ValueError):
    """A key-set document that cannot be read at all (not JSON, no public_keys list)."""


def parse_key_set(document: bytes) -> dict[str, PublicKey]:
    """Identifier to key. Entries that are not P-256 public keys are skipped (and logged), so that one odd entry a
    reporter adds cannot stop its other keys from working; a document without a public_keys list is refused."""
    try:
        parsed = json.loads(document)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise KeySetError("the key set is not JSON") from None
    entries = parsed.get("public_keys") if isinstance(parsed, dict) else None
    if not isinstance(entries, list):
        raise KeySetError("the key set has no public_keys list")
    keys: dict[str, PublicKey] = {}
    for entry in entries[:MAX_KEYS_PER_SET]:
        identifier = entry.get("key_identifier") if isinstance(entry, dict) else None
        pem = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or not 0 < len(identifier) <= MAX_KEY_IDENTIFIER_LENGTH:
            log.warning("skipping a key-set entry without a usable key_identifier")
            continue
        key = _p256_key(pem)
        if key is None:
            log.warning("skipping key %r: not a PEM ECDSA P-256 public key", identifier)
            continue
        keys[identifier] = key
    return keys


def _p256_key(pem: object) -> PublicKey | None:
    if not isinstance(pem, str):
        return None
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return None
    return key


def decode_signature(header: str) -> bytes | None:
    """The DER signature from its base64 header, or None when the header is not base64 of a plausible length."""
    if not 0 < len(header) <= MAX_SIGNATURE_LENGTH:
        return None
    try:
        return base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def verifies(key: PublicKey, body: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True
