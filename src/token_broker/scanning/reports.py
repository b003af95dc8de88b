"""Reading a report's body: a JSON array of `{"token", "type", "url", "source"}` objects. Pure.

`token` and `type` are required strings; `url` and `source` are optional strings (GitHub's older reports carry no
`source`); other fields are ignored, so that a field GitHub adds later does not break reports. A token must have the
shape of the regular expression the README publishes, since that is all a scanner is registered to match; a token
of that shape whose checksum or secret is wrong is a false positive, answered as such, not an error.
"""

from __future__ import annotations

import json
import re

from token_broker.credentials import CREDENTIAL_PATTERN
from token_broker.errors import MalformedReport, ReportTooLarge
from token_broker.services.leaks import ReportedToken

MAX_BODY_BYTES = 1024 * 1024
MAX_MATCHES = 1000
MAX_TYPE_LENGTH = 200
MAX_SOURCE_LENGTH = 64
MAX_URL_LENGTH = 4096
_TOKEN_SHAPE = re.compile(CREDENTIAL_PATTERN)


def read_report(body: bytes) -> tuple[ReportedToken, ...]:
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedReport("The report is not JSON: send a JSON array of token matches.") from None
    if not isinstance(parsed, list):
        raise MalformedReport('The report must be a JSON array of {"token", "type", "url", "source"} objects.')
    if len(parsed) > MAX_MATCHES:
        raise ReportTooLarge(f"A report may hold at most {MAX_MATCHES} matches; send the rest in another report.")
    return tuple(_match(index, item) for index, item in enumerate(parsed))


def _match(index: int, item: object) -> ReportedToken:
    where = f"match {index}"
    if not isinstance(item, dict):
        raise MalformedReport(f'{where} is not an object with "token" and "type".')
    token, kind = item.get("token"), item.get("type")
    url, source = item.get("url", ""), item.get("source", "")
    if not isinstance(token, str) or _TOKEN_SHAPE.fullmatch(token) is None:
        raise MalformedReport(f"{where}: token is not a token-broker credential (it must match {CREDENTIAL_PATTERN}).")
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_TYPE_LENGTH:
        raise MalformedReport(f"{where}: type must be a string of 1 to {MAX_TYPE_LENGTH} characters.")
    if url is None:
        url = ""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise MalformedReport(f"{where}: url must be a string of at most {MAX_URL_LENGTH} characters.")
    if source is None:
        source = ""
    if not isinstance(source, str) or len(source) > MAX_SOURCE_LENGTH:
        raise MalformedReport(f"{where}: source must be a string of at most {MAX_SOURCE_LENGTH} characters.")
    return ReportedToken(token=token, type=kind, url=url, source=source)
