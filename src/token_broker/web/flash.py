"""One-shot messages across a redirect (post, redirect, get): kept in the signed session cookie until shown.

The cookie is signed, not encrypted, and the user can read it: a flash never holds secret material (a new key's
plaintext is shown by the response to the POST that made it, never carried in the session).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import HTTPConnection

FLASH_KEY = "flash"
MAX_FLASHES = 5
MAX_FLASH_LENGTH = 300
Kind = Literal["ok", "error"]


@dataclass(frozen=True)
class Flash:
    kind: Kind
    text: str


def flash(connection: HTTPConnection, kind: Kind, text: str) -> None:
    session: dict[str, Any] = connection.session
    pending = session.get(FLASH_KEY)
    queue = pending if isinstance(pending, list) else []
    queue.append([kind, text[:MAX_FLASH_LENGTH]])
    session[FLASH_KEY] = queue[-MAX_FLASHES:]


def pop_flashes(connection: HTTPConnection) -> list[Flash]:
    session: dict[str, Any] = connection.session
    pending = session.pop(FLASH_KEY, None)
    if not isinstance(pending, list):
        return []
    shown = []
    for item in pending:
        if isinstance(item, list) and len(item) == 2 and item[0] in ("ok", "error") and isinstance(item[1], str):
            shown.append(Flash(kind=item[0], text=item[1]))
    return shown
