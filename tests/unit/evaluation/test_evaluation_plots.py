"""Evaluation pictures: the training run's loss curves."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsearch.evaluation.plots import plot_history

pytestmark = pytest.mark.unit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_history_draws_every_series(tmp_path: Path) -> None:
    history = [
        {"epoch": e, "total": 3.0 - e, "proxy": 1.0 / (e + 1), "lr": 0.002} for e in range(3)
    ]
    png = plot_history(history, tmp_path / "curves.png")
    assert png is not None and png.read_bytes()[:8] == PNG_MAGIC
    assert plot_history([], tmp_path / "none.png") is None


def test_plot_history_without_numeric_series_draws_nothing(tmp_path: Path) -> None:
    assert plot_history([{"epoch": 0, "note": "warm-up"}], tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()
