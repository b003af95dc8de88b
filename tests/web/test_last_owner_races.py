"""Two owners each stepping down at the same moment: without a lock both would see two owners and both succeed,
leaving a workspace (or an organization) with none. Played through a real server, many rounds, on both databases;
each round exactly one succeeds, the other gets 409 conflict, and a viewer keeps reading the members meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import httpx
from sqlalchemy import delete, func, select, update

from tests.browser_forms import sign_in
from tests.live import LiveServer
from tests.support import PASSWORD, Team
from token_broker.store.database import Database
from token_broker.store.models import Membership, Organization, User, Workspace, utcnow
from token_broker.store.org_models import OrganizationRole

ROUNDS = 8
OWNERS = ("owner@acme.example", "admin@acme.example")


def session_of(live: LiveServer, email: str) -> tuple[httpx.Client, str]:
    client = live.client()
    assert sign_in(client, email, PASSWORD).status_code == 303
    return client, client.get("/api/session").json()["csrf_token"]


def user_id(database: Database, email: str) -> tuple[int, str]:
    with database.read() as session:
        row = session.execute(select(User.id, User.public_id).where(User.email == email)).one()
        return row.id, row.public_id


def race(live: LiveServer, requests: list[Callable[[httpx.Client, str], httpx.Response]]) -> list[int]:
    """Each request from its own owner's fresh session, released together."""
    sessions = [session_of(live, email) for email in OWNERS]
    barrier = threading.Barrier(len(requests) + 1)

    def run(index: int) -> int:
        client, csrf = sessions[index]
        barrier.wait(30)
        return requests[index](client, csrf).status_code

    try:
        with ThreadPoolExecutor(len(requests) + 1) as pool:
            futures = [pool.submit(run, index) for index in range(len(requests))]
            barrier.wait(30)
            return sorted(future.result(60) for future in futures)
    finally:
        for client, _ in sessions:
            client.close()


def workspace_owners(database: Database, account_id: str) -> int:
    with database.read() as session:
        return int(
            session.scalar(
                select(func.count(Membership.id))
                .join(Workspace, Workspace.id == Membership.workspace_id)
                .where(Workspace.account_id == account_id, Membership.role == "owner")
            )
            or 0
        )


def test_two_owners_stepping_down_at_once_leave_one(live: LiveServer, team: Team) -> None:
    database = live.resources.database
    ids = [user_id(database, email) for email in OWNERS]
    base = f"/api/workspaces/{team.account_id}/members"
    viewer, _ = session_of(live, "viewer@acme.example")
    with closing(viewer):
        for round_number in range(ROUNDS):
            with database.write() as session:
                workspace_id = session.scalar(select(Workspace.id).where(Workspace.account_id == team.account_id))
                for internal, _ in ids:
                    session.execute(delete(Membership).where(Membership.user_id == internal,
                                                             Membership.workspace_id == workspace_id))  # fmt: skip
                    session.add(
                        Membership(user_id=internal, workspace_id=workspace_id, role="owner", created_at=utcnow())
                    )
            removing = round_number % 2 == 1

            def step_down(public_id: str, removing: bool) -> Callable[[httpx.Client, str], httpx.Response]:
                def call(client: httpx.Client, csrf: str) -> httpx.Response:
                    headers = {"X-CSRF-Token": csrf}
                    if removing:
                        return client.post(f"{base}/{public_id}/remove", headers=headers)
                    return client.post(f"{base}/{public_id}/role", json={"role": "member"}, headers=headers)

                return call

            statuses = race(live, [step_down(public, removing) for _, public in ids])
            assert statuses == [200, 409], (round_number, statuses)
            assert workspace_owners(database, team.account_id) == 1
            assert viewer.get(base).status_code == 200, "the viewer reads on"


def test_two_organization_owners_stepping_down_at_once_leave_one(live: LiveServer, team: Team) -> None:
    database = live.resources.database
    ids = [user_id(database, email) for email in OWNERS]
    first, csrf = session_of(live, OWNERS[0])
    with closing(first):
        made = first.post("/api/organizations", json={"name": "Acme Holdings", "account_ids": [team.account_id]},
                          headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert made.status_code == 201
    org = made.json()["id"]
    for round_number in range(ROUNDS):
        with database.write() as session:
            organization_id = session.scalar(select(Organization.id).where(Organization.public_id == org))
            session.execute(delete(OrganizationRole).where(OrganizationRole.organization_id == organization_id))
            for internal, _ in ids:
                session.add(OrganizationRole(organization_id=organization_id, user_id=internal, role="owner",
                                             created_at=utcnow()))  # fmt: skip

        def step_down(public_id: str) -> Callable[[httpx.Client, str], httpx.Response]:
            def call(client: httpx.Client, csrf: str) -> httpx.Response:
                return client.post(f"/api/organizations/{org}/roles", json={"user": public_id, "role": "none"},
                                   headers={"X-CSRF-Token": csrf})  # fmt: skip

            return call

        statuses = race(live, [step_down(public) for _, public in ids])
        assert statuses == [200, 409], (round_number, statuses)
        with database.read() as session:
            owners = session.scalar(select(func.count(OrganizationRole.id)).where(OrganizationRole.role == "owner"))
        assert owners == 1


def test_two_organizations_taking_the_same_workspace_at_once_get_it_once(live: LiveServer, team: Team) -> None:
    """Co-owners of a workspace each place it in their own organization at the same moment: one wins, the other is
    told it is in another organization already, and the workspace is where the winner's answer says."""
    database = live.resources.database
    with database.write() as session:
        workspace_id = session.scalar(select(Workspace.id).where(Workspace.account_id == team.account_id))
        admin = session.scalar(select(User.id).where(User.email == OWNERS[1]))
        session.execute(
            update(Membership)
            .where(Membership.user_id == admin, Membership.workspace_id == workspace_id)
            .values(role="owner")
        )
    orgs = []
    for email in OWNERS:
        client, csrf = session_of(live, email)
        with closing(client):
            made = client.post("/api/organizations", json={"name": email}, headers={"X-CSRF-Token": csrf})
            assert made.status_code == 201
            orgs.append(made.json()["id"])

    def place(org: str) -> Callable[[httpx.Client, str], httpx.Response]:
        def call(client: httpx.Client, csrf: str) -> httpx.Response:
            return client.post(f"/api/organizations/{org}/workspaces", json={"account_id": team.account_id},
                               headers={"X-CSRF-Token": csrf})  # fmt: skip

        return call

    for round_number in range(ROUNDS):
        with database.write() as session:
            session.execute(update(Workspace).where(Workspace.id == workspace_id).values(organization_id=None))
        statuses = race(live, [place(org) for org in orgs])
        assert statuses == [200, 409], (round_number, statuses)
        with database.read() as session:
            holder = session.scalar(
                select(Organization.public_id)
                .join(Workspace, Workspace.organization_id == Organization.id)
                .where(Workspace.id == workspace_id)
            )
        assert holder in orgs
