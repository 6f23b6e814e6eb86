"""Read a JSON file of settings (``czii train --config``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DataError


def read_settings(path: Path) -> dict[str, Any]:
    """The JSON object stored in ``path``.

    Parameters
    ----------
    path : Path
        A JSON file holding one object of settings.

    Raises
    ------
    DataError
        The file cannot be read, is not JSON, or holds something other than an object.
    """
    try:
        settings = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(settings, dict):
        raise DataError(f"{path}: training settings must be a JSON object, found {type(settings).__name__}")
    return settings
