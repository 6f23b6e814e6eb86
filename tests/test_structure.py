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


FORMATTED_FLAG = re.compile(r"(?:^|[^\w-])--?$")  # "--{name}" or " -{letter}": a flag spelled from a value


def strings_in(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def formatted_flags(node: ast.AST) -> list[str]:
    """F-string pieces that end in ``--`` or `` -`` right before a value: a flag spelled from it (``--{name}``)."""
    found = []
    for joined in (n for n in ast.walk(node) if isinstance(n, ast.JoinedStr)):
        for index, (piece, after) in enumerate(zip(joined.values, joined.values[1:])):
            if not (isinstance(piece, ast.Constant) and isinstance(piece.value, str)):
                continue
            text = piece.value if index == 0 else "x" + piece.value  # after a value: not the start of the string
            if isinstance(after, ast.FormattedValue) and FORMATTED_FLAG.search(text):
                found.append(piece.value + "{…}")
    return found


def _is_error_call(node: ast.AST) -> bool:
    """``SomethingError(...)`` or ``errors.SomethingError(...)``."""
    if not isinstance(node, ast.Call):
        return False
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
    return name.endswith("Error")


def _assigned(function: ast.AST) -> dict[str, list[ast.AST]]:
    """Values assigned to each plain name in a function (messages built before they are raised)."""
    values: dict[str, list[ast.AST]] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    values.setdefault(target.id, []).append(node.value)
    return values


def flag_messages(source: str) -> list[tuple[int, str]]:
    """Strings that name a flag in errors (raised or built), their messages, and functions that build messages."""
    tree = ast.parse(source)
    scopes: list[tuple[int, ast.AST]] = []
    for function in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
        assigned = _assigned(function)
        for node in ast.walk(function):
            if isinstance(node, ast.Raise) and node.exc is not None:
                call = node.exc
            elif _is_error_call(node):
                call = node
            else:
                continue
            scopes.append((node.lineno, call))
            arguments = call.args if isinstance(call, ast.Call) else [call]
            for name in (a.id for a in arguments if isinstance(a, ast.Name)):
                scopes += [(node.lineno, value) for value in assigned.get(name, [])]
    scopes += [
        (node.lineno, node)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.endswith("_message")
    ]
    found = {(line, text) for line, scope in scopes for text in strings_in(scope) if FLAG.search(text)}
    found |= {(line, text) for line, scope in scopes for text in formatted_flags(scope)}
    return sorted(found)


def test_the_check_finds_a_flag_in_a_raised_message():
    source = 'def f(x):\n    if x:\n        raise ValueError(f"--patch needs {x}")\n    raise KeyError("patch")\n'
    assert flag_messages(source) == [(3, "--patch needs ")]
    assert flag_messages('def exists_message(p):\n    return f"{p}: pass --overwrite"\n') == [(1, ": pass --overwrite")]
    assert flag_messages('raise ValueError(f"{n} inputs; pass -o DIR")') == [(1, " inputs; pass -o DIR")]
    assert flag_messages('log("--init: kept")\nraise ValueError("single-channel a-b -- c, -1")\n') == []


def test_the_check_finds_flags_spelled_from_values_built_messages_and_unraised_errors():
    assert flag_messages('raise UsageError(f"{p}: pass --{option} again")') == [(1, ": pass --{…}")]
    assert flag_messages('raise UsageError(f"give -{letter} once")') == [(1, "give -{…}")]
    built = 'def f(p):\n    message = f"{p}: pass --overwrite"\n    raise DataError(message)\n'
    assert flag_messages(built) == [(3, ": pass --overwrite")]
    assert flag_messages('errors.append(UsageError("use -o DIR"))') == [(1, "use -o DIR")]
    assert flag_messages('raise UsageError(f"-{a} or {b} --{c}")') == [(1, " --{…}"), (1, "-{…}")]
    assert flag_messages('raise UsageError(f"range {lo}-{hi}; tomo-{kind}")') == []


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
    assert assignments_of("DEFAULT_THRESHOLD") == ["pick_settings.py"]
    assert assignments_of("NO_SUCH_NAME_ANYWHERE") == []


def test_shared_facts_have_one_home():
    """The training spheres' radius scale, the default pick threshold and the background
    channel's name are each defined once; the other modules import them."""
    from czii_cli import catalog, make_labels, pick_settings, postprocess
    from czii_cli.postprocess import common

    assert assignments_of("DEFAULT_RADIUS_SCALE") == ["make_labels.py"]
    assert common.DEFAULT_RADIUS_SCALE is make_labels.DEFAULT_RADIUS_SCALE
    assert common.DEFAULT_RADIUS_SCALE == 0.5
    assert assignments_of("BACKGROUND") == ["catalog.py"]
    assert postprocess.BACKGROUND is catalog.BACKGROUND == "background"
    assert common.DEFAULT_THRESHOLD is pick_settings.DEFAULT_THRESHOLD == 0.15


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
