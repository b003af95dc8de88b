"""What the connectors' tests share: where the connectors are, their manifests, IML JSON files, and a static scan of
each connector's code for the workspace API endpoints it calls."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from starlette.routing import Route

from token_broker.api.routes import ROUTES

ROOT = Path(__file__).resolve().parents[2]
CONNECTORS = ROOT / "connectors"
PLATFORMS = ("zapier", "n8n", "make")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

Endpoint = tuple[str, str]  # (method, path template as in /openapi.json)


def manifest(platform: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((CONNECTORS / platform / "manifest.json").read_text(encoding="utf-8"))
    return document


def manifest_endpoints(platform: str) -> set[Endpoint]:
    return {(entry["method"], entry["path"]) for entry in manifest(platform)["endpoints"]}


def served_endpoints() -> set[Endpoint]:
    """The broker's workspace API as its route table declares it."""
    served: set[Endpoint] = set()
    for route in ROUTES:
        assert isinstance(route, Route)
        served |= {(method, "/v1" + route.path) for method in route.methods or () if method != "HEAD"}
    return served


def template_pattern(path: str) -> re.Pattern[str]:
    """`/v1/workspaces/{account_id}/links` matches `/v1/workspaces/acc_1/links`, one segment per placeholder."""
    parts = re.split(r"\{[^/{}]+\}", path)
    return re.compile("[^/?#]+".join(re.escape(part) for part in parts) + r"\Z")


def endpoint_of(method: str, path: str, endpoints: Iterable[Endpoint]) -> Endpoint | None:
    """The endpoint (method and template) a concrete request falls in, if any."""
    for candidate_method, template in endpoints:
        if candidate_method == method and template_pattern(template).match(path):
            return candidate_method, template
    return None


# IML JSON: JSON with // and /* */ comments.


def strip_comments(text: str) -> str:
    out: list[str] = []
    i, in_string = 0, False
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\":
                out.append(text[i + 1])
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def load_iml(path: Path) -> Any:
    return json.loads(strip_comments(path.read_text(encoding="utf-8")))


def make_files() -> list[Path]:
    return sorted(path for path in (CONNECTORS / "make").rglob("*.json") if path.name != "manifest.json")


# Static scan: which endpoints does each connector's code name?

PLACEHOLDER = re.compile(r"\$\{[^}]*\}|\{\{.*?\}\}")
JS_CALL = re.compile(r"""(['"])(GET|POST|PUT|PATCH|DELETE)\1\s*,\s*[`'"](/v1/[^`'"\s]*)""")
JS_PATH = re.compile(r"""[`'"](/v1/[^`'"\s]*)""")


def normalize(path: str) -> str:
    """A path as code writes it, with each `${...}` or `{{...}}` as one `{}` segment and no query string."""
    return PLACEHOLDER.sub("{}", path.split("?")[0])


def source_files(platform: str) -> list[Path]:
    folder = CONNECTORS / platform
    if platform == "zapier":
        return sorted(p for p in folder.rglob("*.js") if not {"node_modules", "test"} & set(p.parts))
    if platform == "n8n":
        return sorted(p for p in folder.rglob("*.ts") if not {"node_modules", "dist", "test"} & set(p.parts))
    return sorted(p for p in folder.rglob("*.iml.json"))


def _iml_requests(document: Any) -> Iterator[dict[str, Any]]:
    if isinstance(document, dict):
        if isinstance(document.get("url"), str):
            yield document
        for value in document.values():
            yield from _iml_requests(value)
    elif isinstance(document, list):
        for item in document:
            yield from _iml_requests(item)


def called_in_code(platform: str) -> set[tuple[str, str, str]]:
    """(method, normalized path, file) for every workspace API path the connector's code names. In JS and TS a
    path passed next to its method takes that method; a path on its own (a credential test's url) is a GET. In IML
    every request directive gives its method (GET by default) and url."""
    found: set[tuple[str, str, str]] = set()
    for path in source_files(platform):
        name = str(path.relative_to(CONNECTORS))
        if platform == "make":
            for request in _iml_requests(load_iml(path)):
                url = re.sub(r"^https?://[^/]+", "", request["url"])
                if url.startswith("/v1/"):
                    found.add((str(request.get("method", "GET")).upper(), normalize(url), name))
            continue
        text = path.read_text(encoding="utf-8")
        paired = set()
        for match in JS_CALL.finditer(text):
            found.add((match.group(2), normalize(match.group(3)), name))
            paired.add(match.start(3) - 1)
        for match in JS_PATH.finditer(text):
            if match.start() not in paired:
                found.add(("GET", normalize(match.group(1)), name))
    return found


def as_normalized(endpoints: Iterable[Endpoint]) -> set[Endpoint]:
    return {(method, re.sub(r"\{[^/{}]+\}", "{}", path)) for method, path in endpoints}
