"""The eval set: held-out queries only, joined with the truth; calibration from the training
run's validation clicks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vsearch.contracts import ITEM_TRUTH, QUERIES, QUERY_TRUTH, read_table
from vsearch.errors import BadInput
from vsearch.evaluation.evalset import add_calibration_set, load_eval_set
from vsearch.mined import QUERY_VIRTUAL_IDS_FILE
from vsearch.settings import Settings
from vsearch.split import is_held_out, validation_mask

pytestmark = pytest.mark.unit


def test_eval_set_is_the_held_out_queries_with_their_truth(tiny_world) -> None:
    drop, truth = tiny_world
    s = Settings()
    ev = load_eval_set(drop, truth, s.split)
    queries = read_table(drop, QUERIES)
    ids = queries["query_id"].astype(str)
    held = set(ids[is_held_out(queries, s.split)])
    with_truth = held & set(read_table(truth, QUERY_TRUTH)["query_id"].astype(str))
    assert set(ev.query_ids) == with_truth and len(ev) + ev.without_truth == len(held)
    assert list(ev.query_ids) == sorted(ev.query_ids)
    item_sku = read_table(truth, ITEM_TRUTH).astype(str).set_index("item_id")["sku"]
    for sku, listings in zip(ev.query_sku, ev.listings, strict=True):
        assert listings == int((item_sku == sku).sum())  # R of MAP@R
    assert ev.true_boxes.shape == (len(ev), 4) and ev.true_boxes.dtype == np.float32
    assert (ev.true_boxes >= 0).all() and (ev.true_boxes <= 1).all()
    assert (ev.true_boxes[:, 2:] > ev.true_boxes[:, :2]).all()
    assert ev.findable.tolist() == (ev.listings > 0).tolist()


def test_missing_folders_are_named(tiny_world, tmp_path: Path) -> None:
    drop, truth = tiny_world
    with pytest.raises(BadInput, match="--drop"):
        load_eval_set(tmp_path / "nope", truth, Settings().split)
    with pytest.raises(BadInput, match="--truth"):
        load_eval_set(drop, tmp_path / "nope", Settings().split)


def test_calibration_uses_validation_clicks_only(tiny_world, tmp_path: Path) -> None:
    drop, truth = tiny_world
    s = Settings()
    ev = load_eval_set(drop, truth, s.split)
    mining = tmp_path / "mining"
    mining.mkdir()
    add_calibration_set(ev, drop, mining, s)  # no mined clicks: the fusion weight of params
    assert ev.calib_images == []
    queries = read_table(drop, QUERIES).astype({"query_id": str})
    item = str(ev.catalog["item_id"].iloc[0])
    clicks = pd.DataFrame({"query_id": queries["query_id"], "item_id": item, "virtual_id": "v"})
    clicks.to_parquet(mining / QUERY_VIRTUAL_IDS_FILE)
    add_calibration_set(ev, drop, mining, s)
    training = queries[~is_held_out(queries, s.split)]
    validation = training[validation_mask(training["query_id"], s.train.val_share, s.project.seed)]
    expected = min(len(validation), s.evaluation.calibration_queries)
    assert len(ev.calib_images) == expected > 0
    assert set(ev.calib_images) <= set(validation["image"].astype(str))  # never trained on
    assert set(ev.calib_category) == {str(ev.catalog["category"].iloc[0])}
