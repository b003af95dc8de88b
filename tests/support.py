"""Helpers shared by tests: cheap hashing settings, a team of users in every role."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from token_broker.config import HashingCost
from token_broker.credentials import SecretHasher
from token_broker.services import workspaces
from token_broker.services.actors import Actor
from token_broker.store.database import Database
from token_broker.store.models import User

# Real argon2id, at a cost that keeps a suite of thousands of hashes fast; production uses argon2-cffi's defaults.
CHEAP_HASHING = HashingCost(time_cost=1, memory_kib=1024, parallelism=1)
CHEAP_HASHING_ENV = {
    "TOKEN_BROKER_ARGON2_TIME_COST": "1",
    "TOKEN_BROKER_ARGON2_MEMORY_KIB": "1024",
    "TOKEN_BROKER_ARGON2_PARALLELISM": "1",
}
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Team:
    """A workspace with one user in each role, and a second workspace none of them belongs to."""

    account_id: str
    other_account_id: str
    owner: Actor
    admin: Actor
    member: Actor
    viewer: Actor
    outsider: Actor


def add_member(database: Database, hasher: SecretHasher, account_id: str, role: str, email: str) -> Actor:
    added = workspaces.add_user(database, hasher, Actor.operator(), email, PASSWORD, account_id, role)
    with database.read() as session:
        user = session.scalars(select(User).where(User.public_id == added.user_id)).one()
    return Actor.user(user.id, user.public_id, client_address="198.51.100.7")


def make_team(database: Database, hasher: SecretHasher) -> Team:
    operator = Actor.operator()
    account_id = workspaces.create_workspace(database, operator, "Acme")
    other = workspaces.create_workspace(database, operator, "Globex")
    return Team(
        account_id=account_id,
        other_account_id=other,
        owner=add_member(database, hasher, account_id, "owner", "owner@acme.example"),
        admin=add_member(database, hasher, account_id, "admin", "admin@acme.example"),
        member=add_member(database, hasher, account_id, "member", "member@acme.example"),
        viewer=add_member(database, hasher, account_id, "viewer", "viewer@acme.example"),
        outsider=add_member(database, hasher, other, "owner", "owner@globex.example"),
    )
