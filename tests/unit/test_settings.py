"""Settings: params.yaml loads, bad keys and types fail loudly naming the key, env overrides."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
import yaml

import vsearch
from vsearch.settings import Settings, SettingsError, load_settings, settings_from_dict

pytestmark = pytest.mark.unit
PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def test_params_yaml_loads_and_matches_every_section() -> None:
    s = load_settings(PARAMS, environ={})
    raw = yaml.safe_load(PARAMS.read_text())
    # every section in the file is a settings section and vice versa: nothing silently defaulted
    assert set(raw) == set(Settings.model_fields)
    assert s.world.items == raw["world"]["items"]
    assert s.index.bits % 8 == 0


def test_every_module_imports() -> None:
    names = [m.name for m in pkgutil.walk_packages(vsearch.__path__, "vsearch.")]
    assert "vsearch.settings" in names and "vsearch.contracts" in names
    for name in names:
        importlib.import_module(name)


def test_unknown_key_is_named() -> None:
    with pytest.raises(SettingsError, match=r"world\.itemz.*unknown key"):
        settings_from_dict({"world": {"itemz": 5}}, environ={})


def test_wrong_type_is_named() -> None:
    with pytest.raises(SettingsError, match=r"world\.items"):
        settings_from_dict({"world": {"items": "many"}}, environ={})


def test_cross_field_rule() -> None:
    with pytest.raises(SettingsError, match="min_sellers"):
        settings_from_dict({"world": {"min_sellers": 4, "max_sellers": 2}}, environ={})


def test_env_override_parses_yaml_values() -> None:
    env = {"VSEARCH__WORLD__ITEMS": "64", "VSEARCH__SERVICES__MLFLOW__PORT": "5999"}
    s = settings_from_dict({}, environ=env)
    assert s.world.items == 64
    assert s.services.mlflow.port == 5999


def test_env_override_values_are_yaml_and_mappings_replace() -> None:
    raw = {"registry": {"gates": {"tolerances": {"identical_recall@10": 0.5, "x": 0.1}}}}
    env = {
        "VSEARCH__TRAIN__TIME_BUDGET_S": "~",
        "VSEARCH__MODEL__WIDTHS": "[8, 16, 24, 32]",
        "VSEARCH__REGISTRY__GATES__TOLERANCES": "{identical_recall@10: 0.02}",
        "VSEARCH__PROJECT__DEVICE": "cpu",
        "OTHER__WORLD__ITEMS": "1",  # not ours
    }
    s = settings_from_dict(raw, environ=env)
    assert s.train.time_budget_s is None
    assert tuple(s.model.widths) == (8, 16, 24, 32)
    assert s.registry.gates.tolerances == {"identical_recall@10": 0.02}
    assert s.project.device == "cpu"


def test_env_override_of_an_unknown_key_or_section_fails() -> None:
    with pytest.raises(SettingsError, match="VSEARCH__WROLD__ITEMS"):
        settings_from_dict({}, environ={"VSEARCH__WROLD__ITEMS": "5"})
    with pytest.raises(SettingsError, match=r"world\.itemz"):
        settings_from_dict({}, environ={"VSEARCH__WORLD__ITEMZ": "5"})


def test_env_override_is_validated() -> None:
    with pytest.raises(SettingsError, match=r"index\.bits"):
        settings_from_dict({}, environ={"VSEARCH__INDEX__BITS": "13"})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- a\n- b\n")
    with pytest.raises(SettingsError, match="mapping"):
        load_settings(top)
