"""Pre-trained model files shipped with czii, usable by name as ``builtin:NAME``.

The package folder ``czii_cli/pretrained`` holds ``NAME.pt`` model files (the ordinary
format, loaded through :mod:`czii_cli.training.checkpoint`).  Each one records the
commands that made it in ``train["recipe"]`` (:func:`with_recipe`), so ``czii info``
shows how to make it again.  A name is checked against the files that exist before it
names a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path

from ..errors import UsageError
from .checkpoint import ModelFile

BUILTIN_PREFIX = "builtin:"
PACKAGE = "czii_cli.pretrained"
SUFFIX = ".pt"


def builtin_names() -> list[str]:
    """Names of the pre-trained model files shipped with czii, sorted.

    Examples
    --------
    >>> "light-sim" in builtin_names()
    True
    """
    folder = resources.files(PACKAGE)
    return sorted(
        entry.name[: -len(SUFFIX)] for entry in folder.iterdir() if entry.name.endswith(SUFFIX) and entry.is_file()
    )


def builtin_path(name: str, *, parameter: str = "model") -> Path:
    """The packaged file of the pre-trained model ``name``.

    Parameters
    ----------
    name : str
        One of :func:`builtin_names` (without the ``builtin:`` prefix).
    parameter : str
        What the name was given as, for the error message.

    Raises
    ------
    UsageError
        ``name`` is not a shipped model (a name with a path separator or ``..`` never is);
        the message lists the names there are.

    Examples
    --------
    >>> builtin_path("light-sim").name
    'light-sim.pt'
    """
    names = builtin_names()
    if name not in names:
        listed = ", ".join(BUILTIN_PREFIX + n for n in names) or "none"
        raise UsageError(f"{parameter} {BUILTIN_PREFIX}{name}: no such built-in model (built-in models: {listed})")
    return Path(str(resources.files(PACKAGE).joinpath(name + SUFFIX)))


def is_builtin(reference: str | Path) -> bool:
    """True when ``reference`` names a shipped model (``builtin:NAME``) rather than a file.

    Examples
    --------
    >>> is_builtin("builtin:light-sim"), is_builtin("runs/light.pt")
    (True, False)
    """
    return str(reference).startswith(BUILTIN_PREFIX)


def resolve_model_reference(reference: str | Path, *, parameter: str = "model") -> Path:
    """A model file path: ``builtin:NAME`` becomes the packaged file, anything else stays a path.

    Examples
    --------
    >>> resolve_model_reference("builtin:light-sim").name, resolve_model_reference("m.pt")
    ('light-sim.pt', PosixPath('m.pt'))
    """
    text = str(reference)
    if is_builtin(text):
        return builtin_path(text[len(BUILTIN_PREFIX) :], parameter=parameter)
    return Path(reference)


def with_recipe(model: ModelFile, *, commands: Sequence[str], version: str) -> ModelFile:
    """``model`` with the commands that made it recorded in ``train["recipe"]``.

    Parameters
    ----------
    model : ModelFile
    commands : sequence of str
        The command lines, in order, run in an empty folder.
    version : str
        The czii version that ran them.

    Examples
    --------
    >>> from czii_cli.training.checkpoint import ModelFile
    >>> model = ModelFile("light", {}, ["background"], [], "spheres", "softmax", {}, [8, 8, 8], 10.0)
    >>> with_recipe(model, commands=["czii simulate sim"], version="0.1.0").train["recipe"]
    {'commands': ['czii simulate sim'], 'czii_version': '0.1.0'}
    """
    recipe = {"commands": [str(line) for line in commands], "czii_version": str(version)}
    return replace(model, train={**model.train, "recipe": recipe})
