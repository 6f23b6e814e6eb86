"""Load a particle catalog from ``--classes FILE`` (copick config or czii JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from ..catalog import DEFAULT_CATALOG, Catalog, catalog_from_mapping
from ..errors import DataError
from . import copick


def load_catalog(path: Path | None) -> Catalog:
    """The default catalog, or the one described by a copick config / JSON class file.

    A copick project root folder is accepted too (its config is used).
    """
    if path is None:
        return DEFAULT_CATALOG
    path = Path(path)
    config = copick.find_config(path) if path.is_dir() else path
    if config is None or not config.exists():
        raise DataError(f"{path}: no such class file or copick project")
    try:
        document = json.loads(config.read_text(encoding="utf-8-sig"))
    except (ValueError, OSError) as err:
        raise DataError(f"{config}: not a readable JSON file ({err})") from None
    if copick.is_config_document(document):
        copick.check_config(document, source=str(config))
    return catalog_from_mapping(document, source=str(config))
