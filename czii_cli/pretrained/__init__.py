"""Pre-trained starting points shipped inside the package: ``train --init builtin:NAME``.

Each is an ordinary czii model file (loaded with ``torch.load(weights_only=True)`` like
any other) whose ``train["recipe"]`` records the exact ``czii`` commands that made it
(``czii info builtin:NAME`` shows them; ``make pretrained`` runs them again).

* ``light-sim``: the default ``light`` net (24-32-48 channels, stem stride 2, 10 Å
  voxels, the six competition classes) trained for 3000 steps on ten simulated
  96x192x192 runs whose SNR (0.03-0.3), particle contrast, defocus, ice gradient and
  distractor rates each run draws from wide ranges.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

PREFIX = "builtin:"
NAMES = ("light-sim",)
"""The models shipped, by name."""


def is_builtin(reference: str | Path) -> bool:
    """Whether ``reference`` names a shipped model (``builtin:NAME``) rather than a file.

    Examples
    --------
    >>> is_builtin("builtin:light-sim"), is_builtin("models/light-sim.pt")
    (True, False)
    """
    return str(reference).startswith(PREFIX)


def model_path(reference: str | Path) -> Path:
    """The file a model reference stands for: a shipped model's file, or the path itself.

    Parameters
    ----------
    reference : str or Path
        ``builtin:NAME`` with NAME one of :data:`NAMES`, or a path to a model file.

    Raises
    ------
    UsageError
        ``builtin:`` with a name that is not shipped (the message lists those that are).

    Examples
    --------
    >>> model_path("builtin:light-sim").name
    'light-sim.pt'
    >>> model_path("run/model.pt")
    PosixPath('run/model.pt')
    """
    if not is_builtin(reference):
        return Path(reference)
    name = str(reference)[len(PREFIX) :]
    if name not in NAMES:
        raise UsageError(f"unknown built-in model {name!r} (built in: {', '.join(NAMES)})")
    return Path(__file__).with_name(f"{name}.pt")
