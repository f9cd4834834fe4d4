"""A pipeline load freezes the worker's heap (``serving.freeze_heap``), and only when asked.

In-process over the served project: a full garbage collection in a loaded worker walks ~570k
objects with the GIL held (~0.25 s, every search waiting), so each load freezes what is alive
(:mod:`vsearch.serving.heap`); a refused load changes nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from vsearch.serving.state import ReloadRefused, ServingState

pytestmark = pytest.mark.integration


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's collector as it was


@pytest.mark.parametrize("freeze", [True, False])
def test_a_load_freezes_the_heap_when_configured(served_project, thawed, freeze: bool) -> None:
    s = served_project.settings.model_copy(deep=True)
    s.serving.freeze_heap = freeze
    state = ServingState(s, served_project.root)
    try:
        state.reload()
        frozen = gc.get_freeze_count()
    finally:
        state.close()
    assert (frozen > 0) is freeze


def test_a_refused_load_freezes_nothing(served_project, thawed, tmp_path) -> None:
    s = served_project.settings.model_copy(deep=True)
    s.project.indexes_dir = tmp_path / "no-indexes"  # nothing to load
    state = ServingState(s, served_project.root)
    with pytest.raises(ReloadRefused):
        state.reload()
    assert gc.get_freeze_count() == 0
