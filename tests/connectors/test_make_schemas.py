"""The Make app: every file validates against the Apps Editor's schemas (vendored, with their MIT licence, in
tests/connectors/make-schemas/), and the connection's PKCE verifier and challenge are what RFC 7636 asks for."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests.connectors.connectors import CONNECTORS, load_iml, make_files
from tests.connectors.iml import check, evaluate, expressions, resolve

SCHEMAS = Path(__file__).resolve().parent / "make-schemas"
MAKE = CONNECTORS / "make"
CONNECTION = MAKE / "connections" / "nim" / "nim.oauth-communication.iml.json"
# The table in make-schemas/README.md: file name ending -> schema.
SCHEMA_FOR = [
    ("makecomapp.json", "makecomapp.schema.json"),
    (".oauth-communication.iml.json", "api-oauth.json"),
    (".communication.iml.json", "api.json"),
    (".attach.iml.json", "api.json"),
    (".detach.iml.json", "api.json"),
    ("params.iml.json", "parameters.json"),
    (".interface.iml.json", "parameters.json"),
    (".samples.iml.json", "samples.json"),
    (".scope-list.iml.json", "scopes.json"),
    (".default-scope.iml.json", "scope.json"),
    ("base.iml.json", "base.json"),
    ("groups.json", "groups.json"),
]
UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]+")


def schema_name(path: Path) -> str:
    for ending, schema in SCHEMA_FOR:
        if path.name.endswith(ending):
            return schema
    raise AssertionError(f"no schema is known for {path.name}")


@pytest.fixture(scope="module")
def registry() -> Registry[Any]:
    resources = [
        (path.name, Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT7))
        for path in SCHEMAS.glob("*.json")
    ]
    assert len(resources) >= len({schema for _, schema in SCHEMA_FOR}), f"the schemas are missing from {SCHEMAS}"
    return Registry().with_resources(resources)


def validator(registry: Registry[Any], name: str) -> jsonschema.Draft7Validator:
    schema = registry.contents(name)
    return jsonschema.Draft7Validator(schema, registry=registry)


def problems(registry: Registry[Any], path: Path, document: Any) -> list[str]:
    found = validator(registry, schema_name(path)).iter_errors(document)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in found]


def test_the_app_has_every_part_the_issue_asks_for() -> None:
    app = load_iml(MAKE / "makecomapp.json")
    assert [meta["connectionType"] for meta in app["components"]["connection"].values()] == ["oauth"]
    modules = app["components"]["module"]
    assert {meta.get("actionCrud") for meta in modules.values()} >= {"create", "read", "update", "delete"}
    assert any(meta["moduleType"] == "search" for meta in modules.values())
    [trigger] = [meta for meta in modules.values() if meta["moduleType"] == "instant_trigger"]
    webhook = app["components"]["webhook"][trigger["webhook"]]
    assert webhook["webhookType"] == "web" and {"attach", "detach"} <= set(webhook["codeFiles"])
    referenced = {
        MAKE / file
        for component in app["components"].values()
        for meta in component.values()
        for file in meta["codeFiles"].values()
        if file
    } | {MAKE / file for file in app["generalCodeFiles"].values() if file and file.endswith(".json")}
    assert referenced == set(make_files()) - {MAKE / "makecomapp.json"}, "makecomapp.json and the files disagree"


@pytest.mark.parametrize("path", make_files(), ids=lambda path: str(path.relative_to(MAKE)))
def test_file_validates_against_its_schema(registry: Registry[Any], path: Path) -> None:
    assert problems(registry, path, load_iml(path)) == []


def test_the_schemas_do_refuse_what_make_refuses(registry: Registry[Any]) -> None:
    connection = load_iml(CONNECTION)
    assert problems(registry, CONNECTION, {**connection, "revoke": connection["invalidate"]})
    attach = MAKE / "webhooks" / "linkEvents" / "linkEvents.attach.iml.json"
    without_body = {key: value for key, value in load_iml(attach).items() if key != "body"}
    assert problems(registry, attach, without_body)  # a POST needs a body
    assert problems(registry, MAKE / "makecomapp.json", {"fileVersion": 1})


def test_connection_sections_are_the_allowed_ones() -> None:
    assert set(load_iml(CONNECTION)) <= {"preauthorize", "authorize", "token", "info", "refresh", "invalidate"}


def pkce(connection: dict[str, Any]) -> tuple[str, str]:
    authorize = connection["authorize"]
    temp = resolve(authorize["temp"], {})
    context = {"temp": temp, "common": {"clientId": "c"}, "oauth": {"localRedirectUri": "r", "scope": ["s"]}}
    return temp["codeVerifier"], resolve(authorize["qs"], context)["code_challenge"]


def test_pkce_verifier_is_43_to_128_unreserved_characters() -> None:
    connection = load_iml(CONNECTION)
    template = connection["authorize"]["temp"]["codeVerifier"]
    assert template.strip() != "{{uuid}}", "one uuid is 36 characters, below RFC 7636's 43"
    verifiers = {pkce(connection)[0] for _ in range(20)}
    assert len(verifiers) == 20, "the verifier must be random for every authorization"
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128, verifier
        assert UNRESERVED.fullmatch(verifier), verifier
    assert connection["token"]["body"]["code_verifier"] == "{{temp.codeVerifier}}"


def test_pkce_challenge_is_s256_of_the_verifier() -> None:
    connection = load_iml(CONNECTION)
    assert connection["authorize"]["qs"]["code_challenge_method"] == "S256"
    swapped = ""
    for _ in range(200):
        verifier, challenge = pkce(connection)
        digest = hashlib.sha256(verifier.encode()).digest()
        assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        swapped += challenge
    assert "-" in swapped and "_" in swapped, "the samples never exercised the + and / replacements"


def test_token_and_refresh_keep_what_make_needs() -> None:
    connection = load_iml(CONNECTION)
    assert connection["token"]["response"]["data"]["expires"] == "{{addSeconds(now, body.expires_in)}}"
    assert connection["refresh"]["condition"] == "{{data.expires < addMinutes(now, 15)}}"
    now = datetime.now(UTC)
    data = {"refreshToken": "old", "accountId": "acc_1", "expires": now + timedelta(minutes=10)}
    assert evaluate(connection["refresh"]["condition"][2:-2], {"data": data}) is True
    later = {**data, "expires": now + timedelta(hours=1)}
    assert evaluate(connection["refresh"]["condition"][2:-2], {"data": later}) is False
    answer = {"access_token": "a", "expires_in": 3600}
    kept = resolve(connection["refresh"]["response"]["data"], {"data": data, "body": answer})
    assert kept["refreshToken"] == "old" and kept["accountId"] == "acc_1"
    fresh = {"access_token": "a", "refresh_token": "new", "expires_in": 3600}
    assert resolve(connection["refresh"]["response"]["data"], {"data": data, "body": fresh})["refreshToken"] == "new"
    assert connection["info"]["url"].endswith("/v1/me")


@pytest.mark.parametrize("path", sorted(MAKE.rglob("*.iml.json")), ids=lambda path: path.name)
def test_every_template_is_one_the_replay_can_resolve(path: Path) -> None:
    """The live replay resolves these; an expression it cannot read must fail here, offline, first."""
    for expression in expressions(load_iml(path)):
        check(expression)
