"""A page on another site makes a signed-in owner's browser POST to every unsafe dashboard route, form or admin JSON
API, with the session cookie but without the CSRF token (which it cannot read). Each is refused with 403 and nothing
changes; the owner's own requests, with the token, keep working. The routes are read from the app's route table, so
a route added later without the check fails here."""

from __future__ import annotations

from sqlalchemy import func, select
from starlette.routing import Route

from tests.live import LiveServer
from tests.support import Team
from tests.web.admin_session import signed_in
from token_broker.store.models import AuditEvent
from token_broker.web.routes import ROUTES


def unsafe_paths(values: dict[str, str]) -> list[str]:
    found = []
    for route in ROUTES:
        if isinstance(route, Route) and route.methods and "POST" in route.methods:
            path = route.path
            for name, value in values.items():
                path = path.replace("{" + name + "}", value)
            assert "{" not in path, f"no test value for a parameter of {route.path}"
            found.append(path)
    return found


def audit_rows(live: LiveServer) -> int:
    with live.resources.database.read() as session:
        return int(session.scalar(select(func.count(AuditEvent.id))) or 0)


def test_every_unsafe_route_refuses_a_request_without_the_csrf_token(live: LiveServer, team: Team) -> None:
    with signed_in(live, "owner") as owner:
        org = owner.post("/api/organizations", {"name": "Acme Holdings", "account_ids": [team.account_id]}).json()
        values = {
            "account_id": team.account_id,
            "organization_id": org["id"],
            "user_id": team.member.label,
            "credential_id": "abcdefABCDEF",
            "connection_id": "con_abcdef",
            "client_id": "n8n_abcdef",
        }
        paths = unsafe_paths(values)
        assert len(paths) > 20
        before = audit_rows(live)
        for path in paths:
            as_json = owner.post(path, {"name": "x", "role": "owner", "user": "member@acme.example"}, csrf=False)
            assert as_json.status_code == 403, (path, as_json.status_code)
            as_form = owner.client.post(path, data={"name": "x", "role": "owner", "decision": "approve"})
            assert as_form.status_code == 403, (path, as_form.status_code)
            wrong = owner.client.post(path, json={"role": "owner"}, headers={"X-CSRF-Token": "forged"})
            assert wrong.status_code == 403, (path, wrong.status_code)
        assert audit_rows(live) == before, "nothing was attempted"
        assert owner.get("/api/session").status_code == 200, "the forged requests did not sign the owner out"
        members = owner.get(f"/api/workspaces/{team.account_id}/members").json()["data"]
        assert {m["email"]: m["role"] for m in members}["member@acme.example"] == "member"
        done = owner.post(f"/api/workspaces/{team.account_id}/members/{team.member.label}/role", {"role": "viewer"})
        assert done.status_code == 200, "with the token, the owner's own change goes through"
