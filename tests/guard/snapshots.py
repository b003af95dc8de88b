"""Verified-credential snapshots for unit tests of the guard's parts."""

from __future__ import annotations

from token_broker.credentials import CredentialKind
from token_broker.services.verification import VerifiedCredential


def snapshot(credential_id: str, **changes: object) -> VerifiedCredential:
    fields: dict[str, object] = {
        "id": credential_id,
        "kind": CredentialKind.WORKSPACE_KEY,
        "platform": None,
        "name": "k",
        "workspace_id": 1,
        "account_id": "acc_x",
        "workspace_name": "X",
        "scopes": None,
        "allowed_ips": (),
        "rate_limits": ("60/minute",),
        "valid_until": None,
        "version": 1,
        **changes,
    }
    return VerifiedCredential(**fields)  # type: ignore[arg-type]
