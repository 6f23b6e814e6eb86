"""The particle catalog and its replacements."""

from __future__ import annotations

import json

import pytest

from czii_cli.catalog import DEFAULT_CATALOG, catalog_from_mapping
from czii_cli.errors import DataError
from czii_cli.io.catalog_file import load_catalog


def test_default_catalog_matches_the_competition():
    rows = [(c.name, c.radius, c.weight, c.label) for c in DEFAULT_CATALOG]
    assert rows == [
        ("apo-ferritin", 60.0, 1.0, 1),
        ("beta-amylase", 65.0, 0.0, 2),
        ("beta-galactosidase", 90.0, 2.0, 3),
        ("ribosome", 150.0, 1.0, 4),
        ("thyroglobulin", 130.0, 2.0, 5),
        ("virus-like-particle", 135.0, 1.0, 6),
    ]
    assert DEFAULT_CATALOG.total_weight == 7.0


def test_copick_config_replaces_catalog(tmp_path):
    config = {
        "pickable_objects": [
            {"name": "membrane", "is_particle": False, "label": 8, "radius": 10},
            {"name": "ribosome", "is_particle": True, "label": 4, "radius": 150, "metadata": {"weight": 3}},
            {"name": "proteasome", "is_particle": True, "label": 2, "radius": 80},
        ]
    }
    (tmp_path / "copick_config.json").write_text(json.dumps(config))
    catalog = load_catalog(tmp_path / "copick_config.json")
    assert catalog.names == ["proteasome", "ribosome"]
    assert catalog.get("ribosome").weight == 3.0
    assert catalog.get("proteasome").weight == 1.0
    assert load_catalog(tmp_path).names == catalog.names  # the project root works too


def test_json_class_list(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"classes": [{"name": "x", "radius": 50, "weight": 2}]}))
    catalog = load_catalog(tmp_path / "c.json")
    assert (catalog.get("x").label, catalog.get("x").weight) == (1, 2.0)


def test_unknown_class_name_is_a_data_error():
    with pytest.raises(DataError, match="unknown particle class 'ribosom'"):
        DEFAULT_CATALOG.get("ribosom")


@pytest.mark.parametrize(
    "document, message",
    [
        ([{"name": "a", "radius": 1}, {"name": "a", "radius": 2}], "repeat"),
        ([{"name": "a", "radius": -1}], "non-positive radius"),
        ([{"name": "a"}], "malformed"),
        ({"something": 1}, "expected a copick config"),
    ],
)
def test_bad_catalogs(document, message):
    with pytest.raises(DataError, match=message):
        catalog_from_mapping(document, source="c.json")
