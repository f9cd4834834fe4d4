"""The evaluation's honest measures: fusion calibrated on queries never trained on, retention
against the same categories, IoU buckets, and the robustness report's photo making."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests import kit
from vsearch.contracts import CATALOG, QUERIES, write_table
from vsearch.evaluation.evalset import add_calibration_set
from vsearch.evaluation.measure import _beats_both, _exact_best_of, _iou_buckets
from vsearch.evaluation.metrics import bucket_index, exact_top_k, exact_top_k_within
from vsearch.evaluation.robustness import CUTOUT, STUDIO, composite, grow_boxes
from vsearch.settings import Settings, SplitSettings
from vsearch.split import held_out_ids
from vsearch.training.data import build_train_data, load_click_labels

pytestmark = pytest.mark.unit

T0 = pd.Timestamp("2026-10-01", tz="UTC")


def _shop(root: Path, n_queries: int) -> tuple[Path, Path]:
    """A drop of four listings (two categories) and ``n_queries`` clicked queries, with tiny
    photos, and its mining folder (every query's first click)."""
    drop, mining = root / "drop", root / "mining"
    (drop / "images").mkdir(parents=True)
    items = ["i0", "i1", "i2", "i3"]
    qids = [f"q{i:04d}" for i in range(n_queries)]
    for name in items + qids:
        Image.new("RGB", (8, 8), (200, 30, 30)).save(drop / "images" / f"{name}.png")
    catalog = pd.DataFrame(
        {
            "item_id": items,
            "category": ["a", "a", "b", "b"],
            "seller_id": "s",
            "title": "t",
            "price": 1.0,
            "image": [f"images/{i}.png" for i in items],
            "listed_at": T0,
            "quality": 0.5,
            "sales": 1,
        }
    )
    write_table(catalog, CATALOG, drop)
    queries = pd.DataFrame(
        {
            "query_id": qids,
            "image": [f"images/{q}.png" for q in qids],
            "user_id": "u",
            "session_id": qids,
            "ts": [T0 + pd.Timedelta(minutes=i) for i in range(n_queries)],
            "predicted_category": "a",
        }
    )
    write_table(queries, QUERIES, drop)
    clicked = [items[i % 4] for i in range(n_queries)]
    kit.write_mining_outputs(
        mining,
        virtual_ids=pd.DataFrame({"item_id": items, "virtual_id": items, "cluster_size": 1}),
        query_virtual_ids=pd.DataFrame(
            {"query_id": qids, "item_id": clicked, "virtual_id": clicked, "cluster_size": 1}
        ),
    )
    return drop, mining


def test_fusion_calibrates_on_the_training_runs_validation_queries_only(tmp_path: Path) -> None:
    drop, mining = _shop(tmp_path, 200)
    s = Settings()
    s.project.seed = 11
    s.split = SplitSettings(method="time", eval_share=0.2)
    s.train.val_share = 0.25
    data = build_train_data(
        drop,
        load_click_labels(mining),
        16,
        split=s.split,
        val_share=s.train.val_share,
        matte_threshold=s.train.augment.matte_threshold,
        seed=s.project.seed,
        workers=1,
    )
    catalog = pd.read_parquet(drop / "catalog.parquet")
    ev = SimpleNamespace(catalog=catalog, calib_images=[], calib_category=np.zeros(0, str))
    add_calibration_set(ev, drop, mining, s)
    calibrated = {Path(p).stem for p in ev.calib_images}
    assert calibrated == set(data.val_query_ids)  # exactly the queries training kept out
    assert 30 < len(calibrated) < 50  # about a quarter of the 160 training-side queries
    assert not calibrated & set(data.query_ids)  # never a query the model trained on
    held = held_out_ids(pd.read_parquet(drop / "queries.parquet"), s.split)
    assert not calibrated & held  # never an evaluation query
    # the category of the clicked listing (i0, i1: a; i2, i3: b; query i clicked item i % 4)
    expected = ["a" if int(Path(p).stem[1:]) % 4 < 2 else "b" for p in ev.calib_images]
    assert list(ev.calib_category) == expected

    s.train.val_share = 0.0  # no validation queries: the fusion weight stays the params' one
    ev = SimpleNamespace(catalog=catalog, calib_images=[], calib_category=np.zeros(0, str))
    add_calibration_set(ev, drop, mining, s)
    assert ev.calib_images == []


def test_exact_search_within_the_searched_categories() -> None:
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(40, 8)).astype(np.float32)
    queries = rng.normal(size=(6, 8)).astype(np.float32)
    groups = np.array(["a", "b", "c", "d"] * 10, dtype=object)
    allowed = [["a"], ["a", "c"], ["b"], ["d", "a"], ["a"], ["zzz"]]
    top = exact_top_k_within(queries, refs, groups, allowed, 12)
    for i, cats in enumerate(allowed):
        cols = np.flatnonzero(np.isin(groups, cats))
        want = cols[np.argsort(-(refs[cols] @ queries[i]), kind="stable")][:12]
        got = top[i][top[i] >= 0]
        assert got.tolist() == want.tolist(), i
        assert (top[i][len(want) :] == -1).all()  # "a" alone has 10 listings: 2 empty slots
    assert (top[5] == -1).all()  # a category with no listing finds nothing
    everything = exact_top_k_within(queries, refs, groups, [["a", "b", "c", "d"]] * 6, 5)
    assert np.array_equal(everything, exact_top_k(queries, refs, 5))


def test_exact_reference_of_two_looks_ranks_each_listing_by_its_better_look() -> None:
    """Binary retention compares the index with exact search of what the pipeline searches:
    with a second look, every listing at the better of its similarities to the two looks."""
    rng = np.random.default_rng(3)
    catalog = rng.normal(size=(40, 8)).astype(np.float32)
    first, second = (rng.normal(size=(6, 8)).astype(np.float32) for _ in range(2))
    looks = [SimpleNamespace(embeddings=first), SimpleNamespace(embeddings=second)]
    top = _exact_best_of(looks, catalog, 5, lambda q: exact_top_k(q, catalog, 5))
    best = np.maximum(first @ catalog.T, second @ catalog.T)
    assert (top == np.argsort(-best, axis=1, kind="stable")[:, :5]).all()
    one = _exact_best_of(looks[:1], catalog, 5, lambda q: exact_top_k(q, catalog, 5))
    assert (one == exact_top_k(first, catalog, 5)).all()


def test_iou_buckets_split_queries_and_their_recall() -> None:
    edges = [0.0, 0.3, 0.5, 0.7, 1.0]
    iou = np.array([0.0, 0.29, 0.3, 0.5, 0.69, 0.7, 1.0, 0.95])
    assert bucket_index(iou, edges).tolist() == [0, 0, 1, 2, 2, 3, 3, 3]
    assert bucket_index(np.array([np.nan, -0.1, 1.1]), edges).tolist() == [-1, -1, -1]
    hit = np.array([False, True, True, False, False, True, True, False])
    found = np.array([True, True, True, True, True, True, True, False])  # the last: no listing
    out = _iou_buckets(iou, hit, found, edges, 10)
    assert out["box_iou_0-0.3_share"] == pytest.approx(2 / 8)
    assert out["box_iou_0.7-1_share"] == pytest.approx(3 / 8)
    assert out["identical_recall@10_iou_0-0.3"] == pytest.approx(0.5)
    assert out["identical_recall@10_iou_0.3-0.5"] == pytest.approx(1.0)
    assert out["identical_recall@10_iou_0.5-0.7"] == pytest.approx(0.0)
    assert out["identical_recall@10_iou_0.7-1"] == pytest.approx(1.0)  # 2 findable, both hit
    empty = _iou_buckets(np.array([0.9]), np.array([True]), np.array([True]), edges, 10)
    assert empty["identical_recall@10_iou_0-0.3"] is None  # no query there: no figure


def test_fused_beats_both_only_when_better_than_each() -> None:
    assert _beats_both(0.8, 0.7, 0.6) == 1.0
    assert _beats_both(0.7, 0.7, 0.6) == 0.0  # equal to the classifier: the vote added nothing
    assert _beats_both(0.7, 0.6, 0.75) == 0.0
    assert _beats_both(0.7, None, 0.6) is None  # no classifier


def test_grown_boxes_stay_in_the_photo() -> None:
    boxes = np.array([[0.4, 0.4, 0.6, 0.8], [0.0, 0.1, 0.5, 0.3]], dtype=np.float32)
    grown = grow_boxes(boxes, 0.25)
    np.testing.assert_allclose(grown[0], [0.35, 0.3, 0.65, 0.9], atol=1e-6)
    np.testing.assert_allclose(grown[1], [0.0, 0.05, 0.625, 0.35], atol=1e-6)  # clipped at 0
    assert np.array_equal(grow_boxes(boxes, 0.0), boxes)
    with pytest.raises(ValueError, match=">= 0"):
        grow_boxes(boxes, -0.1)


def test_reshot_photos_keep_or_drop_the_studio_background() -> None:
    side = 64
    studio = np.full((3, side, side), 255, dtype=np.uint8)  # a white studio ...
    studio[:, 24:40, 16:48] = np.array([0, 0, 200], dtype=np.uint8)[:, None, None]  # blue box
    alpha = np.zeros((side, side), dtype=np.uint8)
    alpha[24:40, 16:48] = 255
    box = np.array([16, 24, 48, 40], dtype=np.float32)
    background = Image.new("RGB", (side, side), (0, 120, 0))  # a green field
    shots = {
        m: composite(studio, alpha, box, background, 0.25, (0.5, 0.5), m) for m in (STUDIO, CUTOUT)
    }
    for photo in shots.values():
        assert photo.shape == (3, side, side) and photo.dtype == np.uint8
        blue = (photo[2] > 150) & (photo[0] < 60)
        ys, xs = np.nonzero(blue)
        assert 14 <= xs.max() - xs.min() + 1 <= 18  # the product's longer side: 1/4 of 64 px
        assert abs(xs.mean() - side / 2) < 2 and abs(ys.mean() - side / 2) < 2  # centred
    white = lambda p: ((p > 240).all(axis=0)).sum()  # noqa: E731
    assert white(shots[STUDIO]) > 100  # the white studio around the product came along
    assert white(shots[CUTOUT]) == 0  # cut out: only the product on the field
    with pytest.raises(ValueError, match="mode"):
        composite(studio, alpha, box, background, 0.25, (0.5, 0.5), "other")


def test_robustness_report_is_seeded_and_bounded(tiny_world, tmp_path: Path) -> None:
    from vsearch.evaluation.evalset import load_eval_set
    from vsearch.evaluation.robustness import robustness_metrics
    from vsearch.model.export import save_model
    from vsearch.search.build import build_pipeline_from_embeddings, encode_catalog
    from vsearch.search.encoder import NetEncoder
    from vsearch.search.images import decode_images

    drop, truth = tiny_world
    s = kit.tiny_settings()
    s.evaluation.robustness.photos = 6
    s.evaluation.robustness.reshot_scales = [0.25, 0.5]
    ev = load_eval_set(drop, truth, s.split)
    cats = sorted(ev.catalog["category"].astype(str).unique())
    save_model(kit.tiny_net(tuple(cats), seed=1), tmp_path / "model", {"name": "tiny"})
    encoder = NetEncoder.load(tmp_path / "model", "cpu")
    size = s.model.input_size
    queries = decode_images([drop / p for p in ev.query_images], size, 1)
    catalog = decode_images([drop / str(p) for p in ev.catalog["image"]], size, 1)
    emb = encode_catalog(encoder, ev.catalog, catalog)
    with build_pipeline_from_embeddings(encoder, ev.catalog, emb, s, tmp_path / "w") as pipeline:
        first = robustness_metrics(pipeline, ev, queries, catalog, s)
        again = robustness_metrics(pipeline, ev, queries, catalog, s)
        s.evaluation.robustness.photos = 0
        assert robustness_metrics(pipeline, ev, queries, catalog, s) == {}
    assert first == again  # seeded: the same photos, boxes, backgrounds and places
    assert first["robust_box_queries"] == first["robust_reshot_listings"] == 6  # bounded
    assert {k for k in first if k.startswith("robust_reshot_studio_")} == {
        "robust_reshot_studio_0.25_recall@10",
        "robust_reshot_studio_0.5_recall@10",
        "robust_reshot_studio_recall@10",  # over both scales
    }
    assert all(0 <= v <= 1 for k, v in first.items() if k.endswith("recall@10"))
