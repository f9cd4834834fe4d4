"""The latest baseline figures: written apart from the model, shown dated with their data in
the model's report; ratios only on the same eval set, a note otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from vsearch.errors import BadInput
from vsearch.evaluation.figures import (
    NO_FIGURES_NOTE,
    attach_figures,
    build_figures,
    data_lineage,
    figures_markdown,
    read_figures,
)
from vsearch.evaluation.report import FIGURES_KEY, report_markdown
from vsearch.settings import EvaluationSettings

pytestmark = pytest.mark.unit

SETTINGS = EvaluationSettings(targets={"identical_recall@10": 0.5, "oracle_ratio": 0.8})
DATA = {"id": "window-abc", "drops": [{"drop": "d1", "dvc_hash": "h1.dir"}]}


def _ev(eval_set_id: str) -> SimpleNamespace:
    return SimpleNamespace(describe=lambda: {"id": eval_set_id, "queries": 10})


def _figures(eval_set_id: str = "set-1") -> dict:
    results = {
        "oracle": SimpleNamespace(metrics={"identical_recall@10": 0.8}, seconds=1.0),
        "colour_histogram": SimpleNamespace(metrics={"identical_recall@10": 0.2}, seconds=2.0),
    }
    when = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    return build_figures(results, {"category_only": "skipped: x"}, _ev(eval_set_id), DATA, when)


def _report(eval_set_id: str = "set-1") -> dict:
    return {
        "model": {"identical_recall@10": 0.6, "click_recall@10": 0.7},
        "eval_set": {"id": eval_set_id},
        "data": {"id": "window-new", "drops": [{"drop": "d2", "dvc_hash": "h2.dir"}]},
        "drop": "window-new",
        "queries": 10,
        "model_fingerprint": "f" * 64,
        "targets": {},
        "warnings": [],
        "baselines": {},
        "ratios": {},
    }


def test_figures_hold_baselines_date_data_and_skips() -> None:
    fig = _figures()
    assert fig["measured_at"] == "2026-12-01T03:00:00+00:00"
    assert fig["data"] == DATA and fig["eval_set"]["id"] == "set-1"
    assert fig["baselines"]["oracle"] == {"identical_recall@10": 0.8}
    assert fig["baselines"]["category_only"] == {"skipped": "skipped: x"}
    assert fig["warnings"] == ["baseline category_only: skipped: x"]
    with pytest.raises(ValueError, match="baselines only"):
        build_figures({"model": SimpleNamespace(metrics={}, seconds=0)}, {}, _ev("s"), DATA)


def test_same_eval_set_gives_ratios_and_the_oracle_target() -> None:
    out = attach_figures(_report(), _figures(), SETTINGS, "reports/baselines/metrics.json")
    assert out["baselines"]["colour_histogram"] == {"identical_recall@10": 0.2}
    assert out["ratios"]["model_vs_oracle_identical_recall@10"] == pytest.approx(0.75)
    assert out["targets"]["oracle_ratio"]["met"] is False  # 0.75 < 0.8
    assert out["targets"]["identical_recall@10"]["met"] is True
    info = out[FIGURES_KEY]
    assert info["same_data"] is True and info["measured_at"] == "2026-12-01T03:00:00+00:00"
    assert "window-abc" in info["note"] and "h1.dir" in info["note"]
    assert info["source"] == "reports/baselines/metrics.json"


def test_other_data_says_so_and_gives_no_ratios() -> None:
    out = attach_figures(_report("set-2"), _figures("set-1"), SETTINGS)
    info = out[FIGURES_KEY]
    assert info["same_data"] is False and out["ratios"] == {}
    assert "OTHER data" in info["note"] and "2026-12-01" in info["note"]
    assert "h1.dir" in info["note"] and "h2.dir" in info["note"]  # both windows, by DVC hash
    assert out["targets"]["oracle_ratio"]["met"] is None  # not faked from other data
    assert out["baselines"]["oracle"] == {"identical_recall@10": 0.8}  # still shown
    md = report_markdown(out)
    assert "OTHER data" in md and "colour_histogram" in md


def test_without_figures_the_report_says_how_to_measure_them() -> None:
    out = attach_figures(_report(), None, SETTINGS, "reports/baselines/metrics.json")
    assert out["baselines"] == {} and out["ratios"] == {}
    assert out[FIGURES_KEY]["note"] == NO_FIGURES_NOTE
    assert "vsearch baselines" in report_markdown(out)
    assert out["targets"]["oracle_ratio"]["met"] is None


def test_reattaching_replaces_older_figures() -> None:
    first = attach_figures(_report("set-2"), _figures("set-1"), SETTINGS)
    again = attach_figures(first, _figures("set-2"), SETTINGS)
    assert again[FIGURES_KEY]["same_data"] is True and again["ratios"]


def test_read_figures_missing_is_none_and_garbage_is_refused(tmp_path: Path) -> None:
    assert read_figures(None) is None and read_figures(tmp_path / "nope.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BadInput, match="unreadable"):
        read_figures(bad)
    bad.write_text(json.dumps({"model": {}}))
    with pytest.raises(BadInput, match="not baseline figures"):
        read_figures(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_figures()))
    assert read_figures(good)["measured_at"] == "2026-12-01T03:00:00+00:00"


def test_data_lineage_reads_the_window_manifest(tmp_path: Path) -> None:
    (tmp_path / "drop.json").write_text(
        json.dumps({"drop_id": "window-x", "window": [{"drop": "a", "dvc_hash": "h.dir"}]})
    )
    assert data_lineage(tmp_path) == {
        "id": "window-x",
        "drops": [{"drop": "a", "dvc_hash": "h.dir"}],
    }
    plain = tmp_path / "plain"
    plain.mkdir()
    assert data_lineage(plain) == {"id": "plain", "drops": []}


def test_figures_markdown_has_a_row_per_baseline() -> None:
    md = figures_markdown(_figures())
    assert "2026-12-01T03:00:00+00:00" in md and "window-abc" in md
    assert "| oracle | 0.800 |" in md and "| category_only | skipped: x |" in md
