"""The ``mining`` section of params.yaml and ``MiningSettings`` stay in sync, defaults included."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vsearch.settings import MiningSettings, SettingsError, settings_from_dict

pytestmark = pytest.mark.unit
PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"


def test_params_yaml_lists_every_key_with_its_default() -> None:
    raw = yaml.safe_load(PARAMS.read_text())["mining"]
    assert set(raw) == set(MiningSettings.model_fields)
    defaults = MiningSettings()
    differ = {k: (v, getattr(defaults, k)) for k, v in raw.items() if getattr(defaults, k) != v}
    assert not differ, f"params.yaml vs MiningSettings defaults: {differ}"


def test_bad_values_are_named() -> None:
    with pytest.raises(SettingsError, match=r"mining\.clustering"):
        settings_from_dict({"mining": {"clustering": "kmeans"}}, environ={})
    with pytest.raises(SettingsError, match=r"mining\.propensity_floor"):
        settings_from_dict({"mining": {"propensity_floor": 0}}, environ={})
