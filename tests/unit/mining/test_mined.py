"""vsearch.mined: what the mining stage writes is what every reader reads back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vsearch import mined
from vsearch.mining.stage import mine_drop
from vsearch.settings import MiningSettings

pytestmark = pytest.mark.unit


def test_outputs_round_trip_through_the_readers(tmp_path: Path, simulate) -> None:
    from vsearch.contracts import IMPRESSIONS, write_table

    log = simulate(n_products=30, queries_per_product=8, seed=4)
    drop = tmp_path / "drop"
    drop.mkdir()
    write_table(log.impressions, IMPRESSIONS, drop)
    out = tmp_path / "mining"
    report = mine_drop(drop, out, MiningSettings())
    assert mined.has_virtual_ids(out) and not mined.has_virtual_ids(tmp_path)
    vids = mined.read_virtual_ids(out, columns=["item_id", "virtual_id"])
    assert list(vids.columns) == ["item_id", "virtual_id"] and len(vids)
    qv = mined.read_query_virtual_ids(out)
    pairs = mined.read_pairs(out)
    assert qv is not None and pairs is not None
    assert set(pairs["label"]) <= {mined.POSITIVE, mined.NEGATIVE}
    assert mined.read_report(out)["counts"] == report["counts"]
    edges = pd.read_parquet(out / mined.EDGES_FILE)
    assert tuple(edges.columns) == mined.EDGE_COLUMNS
    assert not list(out.glob(".*"))  # no temp file left behind


def test_optional_outputs_read_as_none_and_virtual_ids_are_required(tmp_path: Path) -> None:
    assert mined.read_query_virtual_ids(tmp_path) is None
    assert mined.read_pairs(tmp_path) is None
    with pytest.raises(FileNotFoundError):
        mined.read_virtual_ids(tmp_path)
