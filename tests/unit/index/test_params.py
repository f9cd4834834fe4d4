"""The ``index:`` section of params.yaml and the settings defaults stay in sync; modules import."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from vsearch.settings import IndexSettings

pytestmark = pytest.mark.unit

MODULES = [
    "vsearch.index.embeddings",
    "vsearch.index.codes",
    "vsearch.index.synthetic",
    "vsearch.index.partition",
    "vsearch.index.rerank_store",
    "vsearch.index.upsert_log",
    "vsearch.index.manifest",
    "vsearch.index.release",
    "vsearch.index.routing",
    "vsearch.index.engine",
    "vsearch.index.builder",
    "vsearch.index.tune",
    "vsearch.index.cli",
    "flows.indexing",
]


def test_params_index_section_matches_defaults(params_path: Path) -> None:
    raw = yaml.safe_load(params_path.read_text())["index"]
    defaults = IndexSettings().model_dump()
    assert set(raw) == set(defaults), "every IndexSettings key has a params.yaml entry"
    assert IndexSettings(**raw).model_dump() == defaults


@pytest.mark.parametrize("name", MODULES)
def test_modules_import_without_side_effects(name: str) -> None:
    importlib.import_module(name)
