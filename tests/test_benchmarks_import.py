"""Every benchmark module imports: a rename in the package must not leave `scripts/bench` broken unnoticed."""

from __future__ import annotations

import importlib
import pkgutil

import benchmarks
import pytest

MODULES = sorted(info.name for info in pkgutil.iter_modules(benchmarks.__path__))


def test_there_are_benchmarks() -> None:
    assert {"speed", "guard", "oauth", "abuse", "scale"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_module_imports(name: str) -> None:
    importlib.import_module(f"benchmarks.{name}")
