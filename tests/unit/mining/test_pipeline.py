"""``mine`` and ``vsearch mine``: the stage end to end on a simulated log, files and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from vsearch.cli_support import configure
from vsearch.contracts import IMPRESSIONS, ITEM_TRUTH, QUERIES, QUERY_TRUTH, write_table
from vsearch.errors import BadInput
from vsearch.mined import PAIRS_FILE, QUERY_VIRTUAL_IDS_FILE, REPORT_FILE, VIRTUAL_IDS_FILE
from vsearch.mining import mine
from vsearch.mining.cli import mine_command
from vsearch.mining.stage import mine_drop
from vsearch.settings import MiningSettings

pytestmark = pytest.mark.unit
PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"


def test_truth_is_report_only(demo_like_log) -> None:
    """Ground truth changes the report, never what is mined."""
    s = MiningSettings()
    blind = mine(demo_like_log.impressions, s)
    seen = mine(
        demo_like_log.impressions,
        s,
        item_truth=demo_like_log.item_truth,
        query_truth=demo_like_log.query_truth,
    )
    pd.testing.assert_frame_equal(blind.pairs, seen.pairs)
    pd.testing.assert_frame_equal(blind.virtual_ids, seen.virtual_ids)
    pd.testing.assert_frame_equal(blind.query_virtual_ids, seen.query_virtual_ids)
    assert "quality" not in blind.report and "quality" in seen.report


def test_report_counts_are_consistent(demo_like_log) -> None:
    r = mine(demo_like_log.impressions, MiningSettings())
    c = r.report["counts"]
    assert c["positives"] == c["clicks"] == c["first_clicks"] + c["switch_clicks"]
    assert c["first_clicks"] == c["queries_with_clicks"] == c["queries_with_virtual_id"]
    assert c["negatives"] == int((r.pairs["label"] == 0).sum())
    assert c["items_clicked"] == len(r.virtual_ids) == r.virtual_ids["item_id"].nunique()
    assert c["coclick_edges_kept"] <= c["coclick_edges"] == len(r.edges)
    assert r.report["propensity"]["0"] == 1.0


def test_false_negative_filter_removes_mostly_true_twins(demo_like_log) -> None:
    r = mine(
        demo_like_log.impressions,
        MiningSettings(),
        item_truth=demo_like_log.item_truth,
        query_truth=demo_like_log.query_truth,
    )
    assert r.report["counts"]["negatives_dropped_same_virtual_id"] > 0
    before = r.report["quality"]["pairs_before_false_negative_filter"]["negative_precision"]
    after = r.report["quality"]["pairs"]["negative_precision"]
    assert after > before


def _queries(log) -> pd.DataFrame:
    """The queries table of a simulated log (the split reads its ``ts``)."""
    return (
        log.impressions.groupby("query_id", as_index=False)
        .agg(session_id=("session_id", "first"), ts=("ts", "min"))
        .assign(image="q.jpg", user_id="u", predicted_category="c")
    )


def _write_drop(tmp_path: Path, log) -> tuple[Path, Path]:
    drop, truth = tmp_path / "drop", tmp_path / "truth"
    write_table(log.impressions, IMPRESSIONS, drop)
    write_table(_queries(log), QUERIES, drop)
    write_table(log.item_truth, ITEM_TRUTH, truth)
    boxes = {f"box_{k}": 0.0 for k in ("x0", "y0", "x1", "y1")}
    write_table(log.query_truth.assign(**boxes), QUERY_TRUTH, truth)
    return drop, truth


def test_mine_drop_writes_tables_and_report(tmp_path: Path, simulate) -> None:
    log = simulate(n_products=40, queries_per_product=10, seed=2)
    drop, truth = _write_drop(tmp_path, log)
    out = tmp_path / "out"
    report = mine_drop(drop, out, MiningSettings(), truth=truth)
    for name in (PAIRS_FILE, VIRTUAL_IDS_FILE, QUERY_VIRTUAL_IDS_FILE, REPORT_FILE):
        assert (out / name).is_file(), name
    pairs = pd.read_parquet(out / PAIRS_FILE)
    assert set(pairs["label"]) <= {0, 1} and (pairs["weight"] >= 0).all()
    saved = json.loads((out / REPORT_FILE).read_text())
    assert saved["counts"] == report["counts"]
    assert 0.0 <= saved["quality"]["virtual_ids"]["coverage"] <= 1.0
    assert not list(out.glob(".*.tmp"))  # atomic writes leave nothing behind


@pytest.mark.parametrize("method", ["time", "hash"])
def test_held_out_queries_are_not_mined(tmp_path: Path, simulate, method: str) -> None:
    from vsearch.settings import SplitSettings
    from vsearch.split import held_out_ids

    split = SplitSettings(method=method, eval_share=0.3)
    log = simulate(n_products=40, queries_per_product=10, seed=2)
    drop, _ = _write_drop(tmp_path, log)
    held = held_out_ids(_queries(log), split)
    mine_drop(drop, tmp_path / "out", MiningSettings(), split=split)
    pairs = pd.read_parquet(tmp_path / "out" / PAIRS_FILE)
    qv = pd.read_parquet(tmp_path / "out" / QUERY_VIRTUAL_IDS_FILE)
    for ids in (pairs["query_id"], qv["query_id"]):
        assert len(ids) and not set(ids.astype(str)) & held
    mine_drop(drop, tmp_path / "all", MiningSettings())  # without a holdout they are mined
    every = pd.read_parquet(tmp_path / "all" / PAIRS_FILE)["query_id"].astype(str)
    assert set(every) & held


def test_mine_drop_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a folder"):
        mine_drop(tmp_path / "nope", tmp_path / "out", MiningSettings())
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="impressions"):
        mine_drop(tmp_path / "empty", tmp_path / "out", MiningSettings())


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        configure(PARAMS)

    app.command("mine")(mine_command)
    return app


def test_cli_json_and_exit_codes(tmp_path: Path, simulate) -> None:
    log = simulate(n_products=30, queries_per_product=8, seed=4)
    drop, truth = _write_drop(tmp_path, log)
    runner = CliRunner()
    args = ["mine", "--drop", str(drop), "--out", str(tmp_path / "o"), "--truth", str(truth)]
    res = runner.invoke(_app(), [*args, "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["counts"]["positives"] > 0 and "virtual_ids" in payload["quality"]
    bad = runner.invoke(_app(), ["mine", "--drop", str(tmp_path / "x"), "--out", str(tmp_path)])
    assert bad.exit_code == 2
    assert "not a folder" in bad.output
