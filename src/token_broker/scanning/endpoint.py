"""POST /secret-scanning/github: GitHub's secret scanning partner protocol, for GitHub and any other trusted scanner.

Checks run cheapest first and each refusal changes nothing: the body's size (413), both signature headers (401),
the key identifier against the trusted key sets (401; 503 while none could be fetched), the ECDSA signature over the
raw bytes (401), the body's shape (400), then a replay of an accepted body (401). Only then is anything looked up.

Looking up costs an argon2 check for each reported token that names a real workspace key, and anyone can make a
trusted scanner report a thousand such strings (key ids are public) by pushing them somewhere public. So verified
reports are handled one at a time on each instance (`Resources.report_slots`), in one worker thread, and while
MAX_WAITING_REPORTS wait, another is answered 503 with Retry-After (GitHub retries): the rest of the service keeps its
threads and cores.
"""

from __future__ import annotations

import hashlib

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from token_broker.app_state import resources
from token_broker.error_responses import api_error
from token_broker.errors import (
    BadReportSignature,
    MethodNotAllowed,
    ReporterKeysUnavailable,
    ReportTooLarge,
    Unavailable,
    UnknownReporterKey,
    UnsignedReport,
)
from token_broker.scanning.reporters import reporter_keys
from token_broker.scanning.reports import MAX_BODY_BYTES, read_report
from token_broker.scanning.signatures import MAX_KEY_IDENTIFIER_LENGTH, decode_signature, verifies
from token_broker.services.leaks import Report, handle_report

KEY_IDENTIFIER_HEADER = "github-public-key-identifier"
SIGNATURE_HEADER = "github-public-key-signature"
MAX_WAITING_REPORTS = 8


async def report(request: Request) -> Response:
    if request.method != "POST":
        # Routed for every method: the dashboard's catch-all mount would otherwise answer other methods with a 404.
        return api_error(MethodNotAllowed("Reports are POSTed."), {"Allow": "POST"})
    state = resources(request)
    body = await _capped_body(request)
    key_identifier = _one_header(request, KEY_IDENTIFIER_HEADER)
    signature = decode_signature(_one_header(request, SIGNATURE_HEADER))
    if signature is None:
        raise BadReportSignature("Github-Public-Key-Signature is not a base64 DER signature.")
    if len(key_identifier) > MAX_KEY_IDENTIFIER_LENGTH:
        raise UnknownReporterKey("No trusted reporter publishes a key with this Github-Public-Key-Identifier.")
    try:
        trusted = await reporter_keys(request).keys_for(key_identifier)
    except ReporterKeysUnavailable as error:
        return api_error(error, {"Retry-After": "60"})
    reporter = next((key.reporter for key in trusted if verifies(key.key, body, signature)), None)
    if reporter is None:
        raise BadReportSignature("The signature does not verify over the request body with the named key.")
    verified = Report(tokens=read_report(body), body_digest=hashlib.sha256(body).hexdigest(), reporter=reporter)
    address = request.client.host if request.client else None
    slots = state.report_slots
    if slots.statistics().tasks_waiting >= MAX_WAITING_REPORTS:
        busy = Unavailable("Too many reports are waiting to be checked; retry in a minute.")
        return api_error(busy, {"Retry-After": "60"})
    outcome = await to_thread.run_sync(handle_report, state.database, state.hasher, verified, address, limiter=slots)
    return JSONResponse([verdict.to_json() for verdict in outcome.verdicts], headers={"Cache-Control": "no-store"})


def _one_header(request: Request, name: str) -> str:
    values = request.headers.getlist(name)
    if len(values) != 1 or not values[0].strip():
        raise UnsignedReport(
            "A report needs exactly one Github-Public-Key-Identifier and one Github-Public-Key-Signature header."
        )
    return values[0].strip()


async def _capped_body(request: Request) -> bytes:
    too_large = ReportTooLarge(f"A report's body may be at most {MAX_BODY_BYTES} bytes.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and (len(declared) > 12 or int(declared) > MAX_BODY_BYTES):
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)
