"""Layers point one way (issue 10, item 4), checked on the source with ``ast``, not by importing it.

- kronos.webui and kronos.cli both sit on kronos.inference and never import each other;
- no kronos module imports data_pipelines (the command-line wrappers sit on top of kronos);
- frame-level forecasting lives in kronos.inference, so neither front end re-implements it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

KRONOS = REPO_ROOT / "kronos"


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Absolute module names a source file imports (``import a.b``, ``from a.b import c`` -> a.b and a.b.c).

    ``package``: the file's package, for relative imports (default: from its place in the repository).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if package is None:
        package = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this file's package
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _sources(package: str) -> list[Path]:
    return sorted((REPO_ROOT / Path(*package.split("."))).rglob("*.py"))


def _offenders(package: str, forbidden: str) -> list[str]:
    return [
        f"{path.relative_to(REPO_ROOT)} imports {name}"
        for path in _sources(package)
        for name in sorted(imported_modules(path))
        if name == forbidden or name.startswith(forbidden + ".")
    ]


@pytest.mark.parametrize(("package", "forbidden"), [
    ("kronos.webui", "kronos.cli"),
    ("kronos.cli", "kronos.webui"),
    ("kronos", "data_pipelines"),
    ("kronos.inference", "kronos.webui"),
    ("kronos.inference", "kronos.cli"),
])
def test_layer_does_not_import(package: str, forbidden: str) -> None:
    assert _sources(package), f"no sources found for {package}"
    assert _offenders(package, forbidden) == []


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    """The parser finds plain, from- and relative imports (so an empty offender list means something)."""
    sample = tmp_path / "probe.py"
    sample.write_text("import kronos.cli.predict\nfrom ..cli import plot\nfrom data_pipelines import clean_csv\n")
    names = imported_modules(sample, package="kronos.webui")
    assert {"kronos.cli.predict", "kronos.cli", "kronos.cli.plot", "data_pipelines"} <= names


def test_frame_level_forecasting_lives_in_inference() -> None:
    from kronos.inference import frame, loading, sessions

    for module, name in ((frame, "read_frame"), (frame, "cut_window"), (frame, "forecast_table"),
                         (frame, "price_band"), (frame, "plan_forecast"), (frame, "forecast_frame"),
                         (sessions, "future_index"), (loading, "load_predictor")):
        assert callable(getattr(module, name))
    assert not (KRONOS / "cli" / "forecast.py").exists(), "kronos/cli/forecast.py moved to kronos/inference/frame.py"
    for front_end in ("kronos.webui", "kronos.cli"):
        users = [p for p in _sources(front_end) if "kronos.inference.frame" in imported_modules(p)]
        assert users, f"{front_end} should forecast through kronos.inference.frame"


def test_no_import_cycles() -> None:
    """No two kronos modules import each other, directly or around a longer circle (function-level imports
    count: they run when called; ``if TYPE_CHECKING:`` imports do not)."""
    from scripts.code_stats import import_cycles

    assert import_cycles(KRONOS) == []


def test_the_cycle_finder_sees_a_cycle(tmp_path: Path) -> None:
    """A circle through a function-level import is found; one closed only under TYPE_CHECKING is not."""
    from scripts.code_stats import import_cycles

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from pkg import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.d import g\n")
    (pkg / "d.py").write_text("from pkg.c import h\n")
    assert import_cycles(pkg) == [["pkg.a", "pkg.b"]]
