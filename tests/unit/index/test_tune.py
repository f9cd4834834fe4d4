"""Tuning: meets its target on a small set, picks the cheapest point, records the curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.index.engine import Engine
from vsearch.index.manifest import Manifest
from vsearch.index.release import resolve
from vsearch.index.tune import TuneQueries, exact_truth, recall_at_k, tune, tune_release

pytestmark = pytest.mark.unit


class FakeClock:
    """Deterministic timer: every call advances by a cost that grows with the work done."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def test_recall_at_k_counts_overlap() -> None:
    found = np.array([["a", "b", None], ["x", "y", "z"]], dtype=object)
    truth = np.array([["a", "c", "b"], ["q", "r", "z"]], dtype=object)
    assert recall_at_k(found, truth) == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_tune_meets_target_on_held_out_queries(indexes_dir: Path, world, index_settings) -> None:
    q = world.queries(200, seed=3)
    tq = TuneQueries(
        q.codes,
        q.vectors,
        category_probs=q.category_probs,
        category_names=list(world.category_names),
    )
    truth = exact_truth(world.catalog, tq, 10)
    settings = index_settings.model_copy(update={"target_recall": 0.9})
    with Engine.open_current(indexes_dir) as engine:
        result = tune(engine, tq, truth, settings, timer=FakeClock(), repeats=1)
        assert result.met_target and result.knob == "nprobe"
        chosen = result.chosen
        # the chosen point really reaches the target when searched the normal way
        engine.uncertain_confidence = chosen.uncertain_confidence
        cats = engine.route(q.category_probs, list(world.category_names))
        knobs = type(engine.knobs)(chosen.nprobe, chosen.ef_search, chosen.quantizer_ef)
        res = engine.search(
            q.codes, q.vectors, cats, 10, chosen.rerank_depth, knobs, extra_depth=chosen.extra_depth
        )
    assert recall_at_k(res.item_ids, truth) >= 0.9
    keys = ("uncertain_confidence", "extra_depth", "nprobe", "rerank_depth")
    points = [tuple(p[key] for key in keys) for p in result.curve]
    assert len(points) == len(set(points)) == 5 * 2 * 4 * 4  # conf x extra x nprobe x depth
    # smallest depth meeting the target at the chosen (confidence, extra depth, nprobe)
    same = [
        p
        for p in result.curve
        if p["nprobe"] == chosen.nprobe
        and p["uncertain_confidence"] == chosen.uncertain_confidence
        and p["extra_depth"] == chosen.extra_depth
    ]
    ok = [p["rerank_depth"] for p in same if p["recall"] >= 0.9]
    assert chosen.rerank_depth == min(ok)
    # recall grows with depth at fixed effort (the shortlist is a prefix)
    recalls = [p["recall"] for p in sorted(same, key=lambda p: p["rerank_depth"])]
    assert recalls == sorted(recalls)


def test_unreachable_target_is_reported(indexes_dir: Path, world, index_settings) -> None:
    q = world.queries(50, seed=4)
    tq = TuneQueries(q.codes, q.vectors, [["shoes"]] * 50)  # half of them in the wrong place
    truth = exact_truth(world.catalog, tq, 10)
    with Engine.open_current(indexes_dir) as engine:
        result = tune(engine, tq, truth, index_settings.model_copy(update={"target_recall": 1.0}))
    assert not result.met_target and result.chosen.source == "tune:target-not-met"
    assert result.chosen.rerank_depth == max(index_settings.tune_depths)


def test_tune_release_writes_manifest(indexes_dir: Path, index_settings) -> None:
    folder = resolve(indexes_dir)
    settings = index_settings.model_copy(update={"target_recall": 0.8, "tune_sample": 100})
    result = tune_release(folder, settings)
    m = Manifest.read(folder)
    assert m.search.source == "tune" and m.search.rerank_depth == result.chosen.rerank_depth
    assert m.tune["curve"] and m.tune["n_queries"] == 100
    with Engine.open(folder) as engine:  # checksums still verify after the manifest rewrite
        assert engine.rerank_depth == result.chosen.rerank_depth
