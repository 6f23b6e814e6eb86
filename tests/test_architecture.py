"""The layering of docs/architecture.md, checked on the real imports.

``io/`` and the shared core sit at the bottom: they may import each other, never a
stage package (``normalize``, ``training/``, ``postprocess/``, ...) or ``commands/``.
Every import counts, at module level or inside a function, so a lazy import cannot
hide a dependency.

``python tests/test_architecture.py`` prints the package-level import graph that the
document describes.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "czii_cli"

SHARED_CORE = {"catalog", "coords", "picks", "errors"}
"""Modules every layer may import; they import only each other."""

IO_MAY_IMPORT = SHARED_CORE | {"io", ""}
"""What ``io/`` may import: itself, the shared core and the package root (``__version__``)."""


def module_name(path: Path, root: Path) -> str:
    """``root/io/picks.py`` -> ``czii_cli.io.picks`` (a package's ``__init__`` names the package)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``path`` that names a module under ``root``.

    ``from . import x`` counts as importing both the package and ``package.x``; names are
    resolved against the importing file's package, as Python does.
    """
    top = root.name
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name == top or name.startswith(top + ".")]


def part_of(name: str) -> str:
    """The top-level part of ``czii_cli`` a module belongs to: ``czii_cli.io.picks`` -> ``io``; the root is ``""``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def existing_module(name: str, known: set[str]) -> str:
    """``czii_cli.io.picks.read_picks`` -> ``czii_cli.io.picks``: drop imported attribute names."""
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def import_graph(root: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """Module -> {imported module: first line}, for every module under ``root``."""
    paths = sorted(root.rglob("*.py"))
    known = {module_name(path, root) for path in paths}
    graph: dict[str, dict[str, int]] = {}
    for path in paths:
        importer = module_name(path, root)
        edges: dict[str, int] = {}
        for line, name in imports_of(path, root):
            target = existing_module(name, known)
            if target != importer:
                edges.setdefault(target, line)
        graph[importer] = edges
    return graph


def offenders(graph: dict[str, dict[str, int]], *, layer: set[str], may_import: set[str]) -> list[str]:
    """``module:line imports target`` for each import out of ``layer`` into a part not in ``may_import``."""
    return sorted(
        f"{module}:{line} imports {target}"
        for module, edges in graph.items()
        if part_of(module) in layer
        for target, line in edges.items()
        if part_of(target) not in may_import
    )


def test_the_graph_resolves_relative_lazy_and_package_imports(tmp_path):
    root = tmp_path / "czii_cli"
    (root / "io").mkdir(parents=True)
    (root / "training").mkdir()
    (root / "__init__.py").write_text("")
    (root / "errors.py").write_text("")
    (root / "io" / "__init__.py").write_text("from . import picks\n")
    (root / "io" / "picks.py").write_text(
        "import numpy\nfrom ..errors import DataError\n\ndef f():\n    from ..training.net import Net\n"
    )
    (root / "training" / "__init__.py").write_text("")
    (root / "training" / "net.py").write_text("from czii_cli.io import picks\nfrom .. import errors\n")
    graph = import_graph(root)
    assert graph == {
        "czii_cli": {},
        "czii_cli.errors": {},
        "czii_cli.io": {"czii_cli.io.picks": 1},
        "czii_cli.io.picks": {"czii_cli.errors": 2, "czii_cli.training.net": 5},
        "czii_cli.training": {},
        "czii_cli.training.net": {"czii_cli.io": 1, "czii_cli.io.picks": 1, "czii_cli": 2, "czii_cli.errors": 2},
    }
    found = offenders(graph, layer={"io"}, may_import=IO_MAY_IMPORT)
    assert found == ["czii_cli.io.picks:5 imports czii_cli.training.net"]


def test_io_imports_only_io_and_the_shared_core():
    graph = import_graph()
    assert "czii_cli.io.volumes" in graph and "czii_cli.io.copick" in graph["czii_cli.io.volumes"]
    assert offenders(graph, layer={"io"}, may_import=IO_MAY_IMPORT) == []


def test_the_shared_core_imports_only_the_shared_core():
    graph = import_graph()
    assert "czii_cli.errors" in graph["czii_cli.catalog"]
    assert offenders(graph, layer=SHARED_CORE, may_import=SHARED_CORE) == []


def package_graph(graph: dict[str, dict[str, int]]) -> dict[str, set[str]]:
    """Part -> the other parts it imports (``io``, ``training``, ``catalog``, ...)."""
    parts: dict[str, set[str]] = {}
    for module, edges in graph.items():
        parts.setdefault(part_of(module) or "czii_cli", set()).update(
            part_of(target) or "czii_cli" for target in edges if part_of(target) != part_of(module)
        )
    return parts


if __name__ == "__main__":
    for part, targets in sorted(package_graph(import_graph()).items()):
        sys.stdout.write(f"{part:14s} -> {', '.join(sorted(targets)) or '-'}\n")
