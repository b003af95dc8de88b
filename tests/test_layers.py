"""The package's imports point one way: read every module's imports (ast, so imports inside functions and under
TYPE_CHECKING count too) and fail on a cycle between packages or an import from a lower layer to a higher one.

A unit is a top-level package (`services`) or a top-level module (`errors`). LAYERS is the one written order, top first;
README's Architecture section mirrors it. A unit may import only units of layers below its own, never one beside it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import token_broker

PACKAGE = Path(token_broker.__file__).parent
ROOT = PACKAGE.name

LAYERS: list[tuple[str, ...]] = [
    ("cli",),
    ("cli_orgs", "cli_people", "demo"),
    ("server",),
    ("app",),
    ("web",),
    ("oauth", "scanning"),
    ("api",),
    ("observe",),
    ("app_state",),
    ("guard", "webhooks"),
    ("services",),
    ("net", "wire"),
    ("store",),
    ("credentials", "policy", "scopes", "body_limit"),
    ("sources", "hashing_pool", "times", "config", "error_responses", "digest_cache"),
    ("errors",),
]
LEVEL = {unit: len(LAYERS) - index for index, layer in enumerate(LAYERS) for unit in layer}


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != ROOT or len(parts) < 2:
        return None
    return parts[1]


def module_name(path: Path) -> tuple[str, bool]:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def imported_modules(text: str, name: str, is_package: bool) -> Iterator[str]:
    """Every module an import statement in module `name` names, resolved to absolute dotted names."""
    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            # `from token_broker import services` names the unit in the alias, not in the module.
            yield from (f"{base}.{alias.name}" for alias in node.names if base == ROOT)


def unit_imports() -> dict[str, dict[str, set[str]]]:
    """unit -> unit it imports -> the modules that import it."""
    found: dict[str, dict[str, set[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.relative_to(PACKAGE).parts:
            continue  # Alembic's scripts, run by Alembic, not imported by the package
        name, is_package = module_name(path)
        source = unit_of(name)
        if source is None:
            continue
        for imported in imported_modules(path.read_text(encoding="utf-8"), name, is_package):
            target = unit_of(imported)
            if target is not None and target != source:
                found.setdefault(source, {}).setdefault(target, set()).add(name)
    return found


def units() -> set[str]:
    found = set()
    for path in PACKAGE.iterdir():
        if path.name.startswith(("_", ".")):
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            found.add(path.name)
        elif path.suffix == ".py":
            found.add(path.stem)
    return found


def test_every_unit_has_a_layer() -> None:
    assert units() - set(LEVEL) == set(), "place each new package or module in LAYERS (and README's Architecture)"
    assert set(LEVEL) - units() == set(), "LAYERS names a unit that no longer exists"


def test_no_import_cycle_between_packages() -> None:
    graph = {source: set(targets) for source, targets in unit_imports().items()}
    cycles: list[list[str]] = []

    def visit(unit: str, path: list[str], on_path: set[str], done: set[str]) -> None:
        for target in sorted(graph.get(unit, ())):
            if target in on_path:
                cycles.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target], on_path | {target}, done)
        done.add(unit)

    done: set[str] = set()
    for unit in sorted(graph):
        if unit not in done:
            visit(unit, [unit], {unit}, done)
    assert cycles == [], "import cycles between packages: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{module} imports {target} (layer {LEVEL[target]}) from {source} (layer {LEVEL[source]})"
        for source, targets in unit_imports().items()
        for target, modules in targets.items()
        if source in LEVEL and target in LEVEL and LEVEL[target] >= LEVEL[source]
        for module in sorted(modules)
    ]
    assert upward == [], "imports that do not point to a lower layer:\n" + "\n".join(upward)


def test_the_reader_resolves_every_import_form() -> None:
    """Absolute, relative, `from package import unit` and function-local imports all reach the check."""
    forms = {
        "from token_broker.api import errors": "token_broker.api",
        "from ..guard import guard": "token_broker.guard",
        "from . import audit": "token_broker.services",
        "from token_broker import web": "token_broker.web",
        "import token_broker.oauth.server": "token_broker.oauth.server",
    }
    for statement, expected in forms.items():
        text = f"def later() -> None:\n    {statement}\n"
        assert expected in set(imported_modules(text, "token_broker.services.links", False)), statement
