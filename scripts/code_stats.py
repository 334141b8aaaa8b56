"""Size and shape of the ``kronos`` package, read from the source with ``ast`` (nothing is imported).

    python scripts/code_stats.py              # JSON: lines, functions over 80 lines, import cycles
    python scripts/code_stats.py --top 15     # also the 15 longest functions

Prints one JSON object:
``lines`` (physical lines of kronos/**/*.py), ``files``, ``functions`` (count),
``functions_over_limit`` ([{"name": "module:qualname", "lines": n}], longest first, limit 80 lines),
``longest`` (the ``--top`` longest functions) and ``import_cycles`` (each cycle of kronos modules found by
walking every import statement, function-level ones included, except those under ``if TYPE_CHECKING:``).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LIMIT = 80


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` (module ``module``) imports at run time: every ``import`` and
    ``from ... import`` (function-level ones too, since they run when called), except under ``if TYPE_CHECKING:``.
    ``from a import b`` counts as importing ``a.b`` when that is a module, else ``a``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names if alias.name in known)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = module.split(".")[: len(module.split(".")) - child.level + (1 if is_package else 0)]
                    base = ".".join([*parts, child.module] if child.module else parts)
                else:
                    base = child.module or ""
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    if sub in known:
                        found.add(sub)
                    elif base in known:
                        found.add(base)
            visit(child)

    visit(tree)
    found.discard(module)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports (see :func:`module_imports`)."""
    paths = {".".join(p.relative_to(package_dir.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in sorted(package_dir.rglob("*.py"))}
    known = set(paths)
    return {name: module_imports(path, name, known) for name, path in paths.items()}


def import_cycles(package_dir: Path) -> list[list[str]]:
    """Every strongly connected group of two or more modules (each an import cycle), sorted.

    A package's ``__init__`` importing its own submodules is not counted as a cycle with them: that edge is
    how packages re-export, and the submodule importing a sibling through the package is what Python resolves
    by loading the package first.
    """
    graph = import_graph(package_dir)
    for name, targets in graph.items():  # drop package -> own submodule edges (re-exports)
        graph[name] = {t for t in targets if not t.startswith(name + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(groups)


def functions(path: Path, module: str) -> list[tuple[str, int]]:
    """(``module:qualname``, lines from ``def`` to its last line) of every function in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((f"{module}:{name}", child.end_lineno - child.lineno + 1))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def stats(package_dir: Path, top: int = 0) -> dict:
    """The JSON object described in the module docstring for ``package_dir`` (e.g. ``kronos/``)."""
    files = sorted(package_dir.rglob("*.py"))
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in files)
    funcs: list[tuple[str, int]] = []
    for path in files:
        module = ".".join(path.relative_to(package_dir.parent).with_suffix("").parts)
        funcs.extend(functions(path, module))
    funcs.sort(key=lambda item: -item[1])
    out = {
        "lines": lines,
        "files": len(files),
        "functions": len(funcs),
        "functions_over_limit": [{"name": n, "lines": k} for n, k in funcs if k > LIMIT],
        "import_cycles": import_cycles(package_dir),
    }
    if top:
        out["longest"] = [{"name": n, "lines": k} for n, k in funcs[:top]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default=str(REPO_ROOT / "kronos"), help="package directory to scan")
    parser.add_argument("--top", type=int, default=0, help="also list the N longest functions")
    args = parser.parse_args()
    print(json.dumps(stats(Path(args.package), args.top), indent=1))


if __name__ == "__main__":
    main()
