"""What a verified secret-scanning report does: each reported token is identified by its format and its secret checked
against the store; a live credential is revoked at once (a partner token's connection disconnected), or, in a
workspace that chose "notify only", left alone; either way the admins get a `credential.leaked` notice and an audit
row names the report's URL and source. Revoked, expired, unknown and wrong-secret tokens change nothing.

Secrets are checked (argon2 for workspace keys) before the write transaction opens. The transaction then records the
report's digest (a replay of the same body is refused), locks each live credential (its connection first, the one
lock order every service keeps), checks again that it is still live, and acts, with its audit row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from token_broker import credentials
from token_broker.credentials import CredentialKind, SecretHasher
from token_broker.errors import MalformedCredential, ReplayedReport
from token_broker.services import admin_notices
from token_broker.services.actors import Actor
from token_broker.services.audit import AuditEntry, record
from token_broker.services.connections import end_connection, lock_connection
from token_broker.services.credential_revocation import end_grace
from token_broker.services.keys import CredentialView, revoke_workspace_key
from token_broker.store.database import Database
from token_broker.store.models import Credential, Workspace, utcnow
from token_broker.store.oauth_models import Connection, RefreshToken
from token_broker.store.scanning_models import ScanningReport

REPLAY_WINDOW = timedelta(days=7)
ACTOR_LABEL = "secret-scanning"
TRUE_POSITIVE = "true_positive"
FALSE_POSITIVE = "false_positive"
MAX_AUDITED_URL = 2048


@dataclass(frozen=True)
class ReportedToken:
    token: str
    type: str
    url: str
    source: str

    def __repr__(self) -> str:
        return f"ReportedToken(type={self.type!r}, url={self.url!r}, source={self.source!r})"

    @property
    def token_hash(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()


@dataclass(frozen=True)
class Report:
    """A report whose signature verified: its matches, the digest of its raw body, and who signed it."""

    tokens: tuple[ReportedToken, ...]
    body_digest: str
    reporter: str


@dataclass(frozen=True)
class Verdict:
    """GitHub's documented answer for one match."""

    token_hash: str
    token_type: str
    label: str

    def to_json(self) -> dict[str, str]:
        return {"token_hash": self.token_hash, "token_type": self.token_type, "label": self.label}


@dataclass(frozen=True)
class Outcome:
    verdicts: list[Verdict]
    stopped: list[str] = field(default_factory=list)  # credential ids whose secrets stopped working: forget them


@dataclass(frozen=True)
class _Match:
    """A reported token that is really ours (its secret verified), and whether it still works."""

    reported: ReportedToken
    kind: CredentialKind
    row_id: int  # a Credential's id, or a RefreshToken's for a refresh token
    previous_secret: bool  # a workspace key's rotated-out secret, still inside its grace window
    live: bool


def handle_report(database: Database, hasher: SecretHasher, report: Report, client_address: str | None) -> Outcome:
    if _seen(database, report.body_digest):
        raise ReplayedReport("This report was received before; a replayed report is not acted on again.")
    now = utcnow()
    checked: dict[str, _Match | None] = {}
    for reported in report.tokens:
        if reported.token not in checked:  # a token reported twice is checked, and acted on, once
            checked[reported.token] = _identify(database, hasher, reported, now)
    verdicts = [
        Verdict(item.token_hash, item.type, FALSE_POSITIVE if checked[item.token] is None else TRUE_POSITIVE)
        for item in report.tokens
    ]
    matches = [match for match in checked.values() if match is not None]
    actor = Actor(label=ACTOR_LABEL, client_address=client_address)
    stopped: list[str] = []
    with database.write() as session:
        session.add(ScanningReport(body_digest=report.body_digest, received_at=now))
        try:
            session.flush()
        except IntegrityError:
            raise ReplayedReport("This report was received before; a replayed report is not acted on again.") from None
        session.execute(delete(ScanningReport).where(ScanningReport.received_at < now - REPLAY_WINDOW))
        for match in matches:
            if match.live:
                stopped += _act(session, actor, match, report.reporter, now)
    return Outcome(verdicts=verdicts, stopped=stopped)


def _seen(database: Database, digest: str) -> bool:
    with database.read() as session:
        return session.scalar(select(ScanningReport.id).where(ScanningReport.body_digest == digest)) is not None


def _identify(database: Database, hasher: SecretHasher, reported: ReportedToken, now: datetime) -> _Match | None:
    """The credential a token stands for when its secret verifies; None for anything else (false positives)."""
    try:
        parsed = credentials.parse(reported.token)
    except MalformedCredential:
        return None
    if parsed.kind is CredentialKind.PARTNER_REFRESH:
        with database.read() as session:
            found = session.execute(
                select(RefreshToken, Connection)
                .join(Connection, Connection.id == RefreshToken.connection_id)
                .where(RefreshToken.public_id == parsed.public_id)
            ).first()
        if found is None or not hasher.verify(found[0].token_hash, reported.token):
            return None
        token, connection = found
        live = token.status == "active" and token.expires_at > now and connection.status == "active"
        return _Match(reported, parsed.kind, token.id, previous_secret=False, live=live)
    with database.read() as session:
        row = session.scalar(select(Credential).where(Credential.public_id == parsed.public_id))
    if row is None or row.kind != parsed.kind.value:
        return None
    usable = row.status == "active" and (row.expires_at is None or row.expires_at > now)
    if hasher.verify(row.secret_hash, reported.token):
        return _Match(reported, parsed.kind, row.id, previous_secret=False, live=usable)
    if row.previous_secret_hash is not None and hasher.verify(row.previous_secret_hash, reported.token):
        in_grace = row.previous_valid_until is not None and row.previous_valid_until > now
        return _Match(reported, parsed.kind, row.id, previous_secret=True, live=usable and in_grace)
    return None


def _act(session: Session, actor: Actor, match: _Match, reporter: str, now: datetime) -> list[str]:
    """Revoke, disconnect or only notify, by the workspace's choice; the audit row and notice; the ids stopped."""
    if match.kind is CredentialKind.WORKSPACE_KEY:
        return _act_on_key(session, actor, match, reporter, now)
    if match.kind is CredentialKind.PARTNER_REFRESH:
        connection_id = session.get_one(RefreshToken, match.row_id).connection_id
    else:
        found = session.get_one(Credential, match.row_id).connection_id
        assert found is not None  # a partner token always has its connection (a CHECK constraint)
        connection_id = found
    connection = lock_connection(session, connection_id)
    token = session.scalars(
        select(Credential).where(Credential.connection_id == connection.id).with_for_update()
    ).first()
    if connection.status != "active" or token is None or not _still_live(session, match, token, now):
        return []
    workspace = session.get_one(Workspace, connection.workspace_id)
    response = "notified"
    if workspace.leak_response == "revoke":
        end_connection(session, connection, actor.label, "token_leaked", now)
        response = "disconnected"
    view = CredentialView.of(token, workspace.account_id, now)
    _tell(session, actor, workspace, match, reporter, view, response, {"connection_id": connection.public_id})
    return [token.public_id] if response == "disconnected" else []


def _still_live(session: Session, match: _Match, token: Credential, now: datetime) -> bool:
    if match.kind is CredentialKind.PARTNER_REFRESH:
        refresh = session.get_one(RefreshToken, match.row_id, populate_existing=True)
        return refresh.status == "active" and refresh.expires_at > now
    return token.status == "active" and (token.expires_at is None or token.expires_at > now)


def _act_on_key(session: Session, actor: Actor, match: _Match, reporter: str, now: datetime) -> list[str]:
    row = session.scalars(
        select(Credential)
        .where(Credential.id == match.row_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if row.status != "active" or (row.expires_at is not None and row.expires_at <= now):
        return []
    if match.previous_secret and (row.previous_valid_until is None or row.previous_valid_until <= now):
        return []
    workspace = session.get_one(Workspace, row.workspace_id)
    response = "notified"
    if workspace.leak_response == "revoke" and match.previous_secret:
        # Only the rotated-out secret leaked: its grace ends now, and the key's current secret keeps working.
        end_grace(session, row)
        response = "grace_ended"
    elif workspace.leak_response == "revoke":
        revoke_workspace_key(session, row, workspace, actor.label, now)
        response = "revoked"
    view = CredentialView.of(row, workspace.account_id, now)
    _tell(session, actor, workspace, match, reporter, view, response, {})
    return [row.public_id] if response != "notified" else []


def _tell(
    session: Session,
    actor: Actor,
    workspace: Workspace,
    match: _Match,
    reporter: str,
    view: CredentialView,
    response: str,
    extra: dict[str, Any],
) -> None:
    found = {
        "url": match.reported.url[:MAX_AUDITED_URL],
        "source": match.reported.source,
        "type": match.reported.type,
        "reporter": reporter,
    }
    which = "previous_secret" if match.previous_secret else "current_secret"
    details = {**found, "response": response, "leaked": which, **extra}
    entry = AuditEntry(action="credential.leaked", workspace_id=workspace.id, target_id=view.id, details=details)
    record(session, actor, entry, "ok", None)
    payload = {"credential": view.to_json(), "report": found, "response": response}
    admin_notices.add_leaked(session, workspace, payload)
