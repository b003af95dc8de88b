"""The error tree. Every error the broker reports on purpose is one of these.

    BrokerError                      code, status, headers, message (never secret material)
    ├── InvalidInput                 422 invalid_request: a field does not validate (names the field)
    ├── NotFound                     404 not_found: no such object here, or not visible to the actor
    ├── Forbidden                    403 forbidden: the actor's role may not do this
    │   └── WrongPassword            403 wrong_password: the current password given to change it is wrong
    ├── Conflict                     409 conflict: the object's state does not allow it (already revoked)
    ├── MethodNotAllowed             405 method_not_allowed: the path exists, the method does not
    ├── PayloadTooLarge              413 payload_too_large: a request body over its cap
    ├── RateLimited                  429 rate_limited: over the credential's rate limit (Retry-After says when)
    │   └── TooManyTries             429 rate_limited: too many wrong current passwords (dashboard)
    ├── Unavailable                  503 service_unavailable: the store or a hashing pool is busy (Retry-After)
    │   └── PasswordsBusy            503 service_unavailable: too many password checks at once (dashboard)
    ├── InternalError                500 internal_error: a failure of ours, with no detail
    ├── GrantRefused                 the token service refuses a grant (OAuth wire only)
    │   ├── InvalidGrant             400 invalid_grant
    │   └── InvalidScope             400 invalid_scope
    ├── SessionRefused               the dashboard refuses a request (its pages and its JSON only)
    │   ├── CsrfFailed               403 csrf_failed
    │   └── NotSignedIn              401 not_signed_in
    ├── ReportRefused                a secret-scanning report is not acted on (changes nothing)
    │   ├── MalformedReport          400 malformed_report: not JSON, not an array of matches, a token of the wrong shape
    │   ├── ReportTooLarge           413 payload_too_large: over the body or match-count cap
    │   ├── UnsignedReport           401 missing_signature: a signature header is missing or unreadable
    │   ├── UnknownReporterKey       401 unknown_key_identifier: no trusted key set holds the key identifier
    │   ├── BadReportSignature       401 invalid_signature: the signature does not verify over the raw body
    │   ├── ReplayedReport           401 replayed_report: this exact body was acted on recently
    │   └── ReporterKeysUnavailable  503 service_unavailable: no trusted key set could be fetched
    └── CredentialRefused            401 unless noted: a presented credential is not accepted
        ├── MissingCredential        401 missing_api_key
        ├── MalformedCredential      401 malformed_api_key: not a credential of ours (prefix, checksum, length)
        ├── InvalidCredential        401 invalid_api_key: unknown, revoked, expired or past its grace window
        ├── TokenExpired             401 token_expired: a partner access token past expires_in
        ├── ReconnectRequired        401 reconnect_required: its connection was disconnected, rotated or revoked
        ├── AccountMismatch          403 api_key_account_mismatch
        ├── InsufficientScope        403 insufficient_scope
        └── IpNotAllowed             403 ip_not_allowed

Each class carries its wire `code`, its HTTP `status` and the `headers` its answer needs (Retry-After, Allow); one
renderer per wire style (`error_responses`: the API's, OAuth's and the dashboard pages') turns them into responses.
`api_error_codes()` is the list of codes the workspace API can answer with, which its OpenAPI document publishes.
This module imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Mapping


class BrokerError(Exception):
    code: str = "error"
    status: int = 400
    # Which wire answers with it: "api" (the workspace API and the dashboard's JSON share it), "oauth", "dashboard"
    # (its pages and JSON only) or "report" (the secret-scanning endpoint).
    wire: str = "api"

    def __init__(self, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: Mapping[str, str] = dict(headers or {})


class InvalidInput(BrokerError):
    code = "invalid_request"
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotFound(BrokerError):
    code = "not_found"
    status = 404


class Forbidden(BrokerError):
    code = "forbidden"
    status = 403


class WrongPassword(Forbidden):
    code = "wrong_password"
    wire = "dashboard"


class Conflict(BrokerError):
    code = "conflict"
    status = 409


class MethodNotAllowed(BrokerError):
    code = "method_not_allowed"
    status = 405


class PayloadTooLarge(BrokerError):
    code = "payload_too_large"
    status = 413


class RateLimited(BrokerError):
    code = "rate_limited"
    status = 429


class TooManyTries(RateLimited):
    code = "rate_limited"
    status = 429
    wire = "dashboard"


class Unavailable(BrokerError):
    code = "service_unavailable"
    status = 503


class PasswordsBusy(Unavailable):
    wire = "dashboard"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many password checks at once: wait a few seconds, then try again.",
            {"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class InternalError(BrokerError):
    code = "internal_error"
    status = 500


class GrantRefused(BrokerError):
    """Refusals of the token service, answered on the OAuth wire only."""

    wire = "oauth"


class InvalidGrant(GrantRefused):
    code = "invalid_grant"
    status = 400


class InvalidScope(GrantRefused):
    code = "invalid_scope"
    status = 400


class SessionRefused(BrokerError):
    """Refusals of the dashboard's session checks, answered on its pages and its JSON only."""

    wire = "dashboard"


class CsrfFailed(SessionRefused):
    code = "csrf_failed"
    status = 403


class NotSignedIn(SessionRefused):
    code = "not_signed_in"
    status = 401


class ReportRefused(BrokerError):
    wire = "report"


class MalformedReport(ReportRefused):
    code = "malformed_report"
    status = 400


class ReportTooLarge(ReportRefused):
    code = "payload_too_large"
    status = 413


class UnsignedReport(ReportRefused):
    code = "missing_signature"
    status = 401


class UnknownReporterKey(ReportRefused):
    code = "unknown_key_identifier"
    status = 401


class BadReportSignature(ReportRefused):
    code = "invalid_signature"
    status = 401


class ReplayedReport(ReportRefused):
    code = "replayed_report"
    status = 401


class ReporterKeysUnavailable(ReportRefused):
    code = "service_unavailable"
    status = 503


class CredentialRefused(BrokerError):
    status = 401


class MissingCredential(CredentialRefused):
    code = "missing_api_key"


class MalformedCredential(CredentialRefused):
    code = "malformed_api_key"


class InvalidCredential(CredentialRefused):
    code = "invalid_api_key"


class TokenExpired(CredentialRefused):
    code = "token_expired"


class ReconnectRequired(CredentialRefused):
    code = "reconnect_required"


class AccountMismatch(CredentialRefused):
    code = "api_key_account_mismatch"
    status = 403


class InsufficientScope(CredentialRefused):
    code = "insufficient_scope"
    status = 403


class IpNotAllowed(CredentialRefused):
    code = "ip_not_allowed"
    status = 403


def _subclasses(root: type[BrokerError]) -> list[type[BrokerError]]:
    found: list[type[BrokerError]] = []
    for child in root.__subclasses__():
        found += [child, *_subclasses(child)]
    return found


def api_error_codes() -> list[str]:
    """The codes the workspace API can answer with: every concrete error of the tree whose wire is the API's."""
    return sorted({cls.code for cls in _subclasses(BrokerError) if cls.wire == "api" and cls.code != BrokerError.code})
