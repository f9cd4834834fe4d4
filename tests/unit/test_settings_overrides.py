"""with_overrides: the benches' ``--set section.key=value`` options, validated like params."""

from __future__ import annotations

import pytest

from tests.kit import REPO_ROOT
from vsearch.settings import SettingsError, load_settings, with_overrides

pytestmark = pytest.mark.unit


def test_overrides_are_parsed_as_yaml_validated_and_leave_the_original_alone() -> None:
    s = load_settings(REPO_ROOT / "params.yaml")
    t = with_overrides(s, ["train.augment.procedural_share=0.5", "model.widths=[16,32,64,128]"])
    assert t.train.augment.procedural_share == 0.5 and tuple(t.model.widths) == (16, 32, 64, 128)
    assert s.train.augment.procedural_share != 0.5  # a copy
    with pytest.raises(SettingsError, match="train.nope"):
        with_overrides(s, ["train.nope=1"])
    with pytest.raises(SettingsError, match="section.key=value"):
        with_overrides(s, ["train.lr"])
