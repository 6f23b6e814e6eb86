"""Structural rules of the code base, checked like a lint: the library does not speak CLI.

Only ``czii_cli/commands/`` and ``czii_cli/main.py`` know command-line flags; library
errors name the parameter or setting and the file.  Nothing outside ``commands/``
imports ``commands/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "czii_cli"
FLAG = re.compile(r"--[a-z]|(?<![\w-])-[a-zA-Z](?![\w-])")  # --long or -s

# Files another change is rewriting now; each still raises this many messages that name
# a flag.  The list may only shrink.
PENDING: dict[str, int] = {}


def library_modules() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "commands" and path.relative_to(PACKAGE) != Path("main.py")
    )


def strings_in(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def flag_messages(source: str) -> list[tuple[int, str]]:
    """Strings that name a flag in ``raise`` statements, and in functions that build messages."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            scope = node.exc
        elif isinstance(node, ast.FunctionDef) and node.name.endswith("_message"):
            scope = node
        else:
            continue
        found += [(node.lineno, text) for text in strings_in(scope) if FLAG.search(text)]
    return found


def test_the_check_finds_a_flag_in_a_raised_message():
    source = 'def f(x):\n    if x:\n        raise ValueError(f"--patch needs {x}")\n    raise KeyError("patch")\n'
    assert flag_messages(source) == [(3, "--patch needs ")]
    assert flag_messages('def exists_message(p):\n    return f"{p}: pass --overwrite"\n') == [(1, ": pass --overwrite")]
    assert flag_messages('raise ValueError(f"{n} inputs; pass -o DIR")') == [(1, " inputs; pass -o DIR")]
    assert flag_messages('log("--init: kept")\nraise ValueError("single-channel a-b -- c, -1")\n') == []


def test_library_errors_never_name_a_flag():
    offenders = {}
    for path in library_modules():
        found = flag_messages(path.read_text())
        if found:
            offenders[path.relative_to(PACKAGE).as_posix()] = found
    new = {name: found for name, found in offenders.items() if len(found) > PENDING.get(name, 0)}
    assert new == {}, "library messages must name the parameter or setting, not the flag"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the ``czii_cli`` modules ``path`` imports."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def test_the_import_check_resolves_relative_imports():
    names = imported_modules(PACKAGE / "io" / "tomogram_inputs.py")
    assert {"czii_cli.io.atomic", "czii_cli.io.outputs.output_folder", "czii_cli.errors"} <= names
    assert "czii_cli.commands.batching" in imported_modules(PACKAGE / "commands" / "postprocess.py")


def test_nothing_outside_commands_imports_commands():
    offenders = {}
    for path in library_modules():
        found = sorted(name for name in imported_modules(path) if name.startswith("czii_cli.commands"))
        if found:
            offenders[path.relative_to(PACKAGE).as_posix()] = found
    assert offenders == {}


def assignments_of(name: str) -> list[str]:
    """Library and command modules that assign ``name`` at module level (``X = ...`` or ``X: T = ...``)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            if any(isinstance(target, ast.Name) and target.id == name for target in targets):
                found.append(path.relative_to(PACKAGE).as_posix())
    return found


def test_the_definition_check_sees_plain_and_annotated_assignments(tmp_path):
    assert assignments_of("DEFAULT_THRESHOLD") == ["postprocess/common.py"]
    assert assignments_of("NO_SUCH_NAME_ANYWHERE") == []


def test_shared_facts_have_one_home():
    """The training spheres' radius scale is defined once; post-processing imports it."""
    from czii_cli import catalog, make_labels, postprocess
    from czii_cli.postprocess import common

    assert assignments_of("DEFAULT_RADIUS_SCALE") == ["make_labels.py"]
    assert common.DEFAULT_RADIUS_SCALE is make_labels.DEFAULT_RADIUS_SCALE
    assert common.DEFAULT_RADIUS_SCALE == 0.5
    assert postprocess.BACKGROUND == catalog.BACKGROUND == "background"


def test_zyx_volumes_are_checked_in_one_place():
    """No module but ``coords.py`` compares axes with ``"zyx"`` or a shape's length with 3 by hand."""
    hand_written = re.compile(r"axes != \"zyx\"|len\([\w.]+\.shape\) != 3|\.ndim != 3")
    offenders = {
        path.relative_to(PACKAGE).as_posix(): [
            n for n, line in enumerate(path.read_text().splitlines(), 1) if hand_written.search(line)
        ]
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE) != Path("coords.py")
    }
    assert {name: lines for name, lines in offenders.items() if lines} == {}


def test_test_modules_share_code_through_helpers_only():
    """Shared test code lives in helpers.py, conftest.py and the job modules, never in a test module."""
    tests = Path(__file__).resolve().parent
    offenders = {}
    for path in sorted(tests.glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        edits = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ]
        found = sorted(name for name in imported if name.split(".")[0].startswith("test_"))
        found += [f"sys.path at line {line}" for line in edits]
        if found:
            offenders[path.name] = found
    assert offenders == {}
