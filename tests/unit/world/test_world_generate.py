"""The generated drop: contract format, consistency a validator enforces, determinism."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vsearch.contracts import (
    CATALOG,
    DROP_TABLES,
    IMPRESSIONS,
    QUERIES,
    QUERY_TRUTH,
    TRUTH_TABLES,
    read_drop_manifest,
    read_raw,
    read_table,
)
from vsearch.errors import BadInput
from vsearch.settings import WorldSettings
from vsearch.world import generate_world
from vsearch.world.generate import event_window

pytestmark = pytest.mark.unit
ITEMS, QUERIES_N, SEED, IMAGE_SIZE = 150, 80, 11, 96  # as in conftest.small_world


# Optional contract columns the demo world does not write (its shop has no stock figures).
WORLD_OMITS = {"catalog": ("stock",)}


def _tables(drop: Path, truth: Path) -> dict[str, pd.DataFrame]:
    return {c.name: read_table(drop, c) for c in DROP_TABLES} | {
        c.name: read_table(truth, c) for c in TRUTH_TABLES
    }


def test_tables_are_in_contract_format(small_world: tuple[Path, Path]) -> None:
    drop, truth = small_world
    for folder, contracts in ((drop, DROP_TABLES), (truth, TRUTH_TABLES)):
        for c in contracts:
            raw = read_raw(folder, c)  # as stored, before any cast
            expected = [n for n in c.names if n not in WORLD_OMITS.get(c.name, ())]
            assert raw.columns.tolist() == expected, c.name
            assert str(raw[c.names[0]].dtype) in ("str", "string", "object")
    t = _tables(drop, truth)
    assert len(t["catalog"]) == ITEMS and len(t["queries"]) == QUERIES_N
    assert str(t["catalog"]["listed_at"].dtype) == "datetime64[us, UTC]"
    manifest = read_drop_manifest(drop)
    assert manifest["drop_id"].startswith("world-") and manifest["source"] == "vsearch world"
    # truth lives beside the drop, never inside it
    assert not any(p.name.endswith(("truth.parquet", "products.parquet")) for p in drop.rglob("*"))


def test_image_paths_are_relative_and_decodable(small_world: tuple[Path, Path]) -> None:
    drop, _ = small_world
    cat, q = read_table(drop, CATALOG), read_table(drop, QUERIES)
    assert all(
        p == f"images/catalog/{i}.jpg" for p, i in zip(cat["image"], cat["item_id"], strict=True)
    )
    assert all(
        p == f"images/queries/{i}.jpg" for p, i in zip(q["image"], q["query_id"], strict=True)
    )
    for rel in [*cat["image"], *q["image"]]:
        with Image.open(drop / rel) as im:
            assert im.format == "JPEG" and im.size == (IMAGE_SIZE, IMAGE_SIZE)
    n_files = sum(1 for f in (drop / "images").rglob("*.jpg"))
    assert n_files == ITEMS + QUERIES_N


def test_ids_unique_and_foreign_keys_hold(small_world: tuple[Path, Path]) -> None:
    t = _tables(*small_world)
    for name, key in (
        ("catalog", "item_id"),
        ("queries", "query_id"),
        ("impressions", "event_id"),
        ("query_truth", "query_id"),
        ("item_truth", "item_id"),
        ("products", "sku"),
    ):
        assert t[name][key].is_unique, name
    imp = t["impressions"]
    assert imp["query_id"].isin(t["queries"]["query_id"]).all()
    assert imp["item_id"].isin(t["catalog"]["item_id"]).all()
    sess = t["queries"].set_index("query_id")["session_id"]
    assert (imp["session_id"].to_numpy() == sess.loc[imp["query_id"]].to_numpy()).all()
    assert set(t["item_truth"]["item_id"]) == set(t["catalog"]["item_id"])
    assert set(t["query_truth"]["query_id"]) == set(t["queries"]["query_id"])
    assert set(t["item_truth"]["sku"]) <= set(t["products"]["sku"])


def test_positions_and_click_orders(small_world: tuple[Path, Path]) -> None:
    imp = read_table(small_world[0], IMPRESSIONS)
    for _, g in imp.groupby("query_id"):
        assert sorted(g["position"]) == list(range(len(g)))
        clicked = g[g["clicked"]]
        assert g.loc[~g["clicked"], "click_order"].isna().all()
        assert g.loc[~g["clicked"], "dwell_ms"].isna().all()
        assert sorted(clicked["click_order"].astype(int)) == list(range(len(clicked)))
        # clicks happen top-down: click order follows position
        assert clicked.sort_values("position")["click_order"].is_monotonic_increasing
        assert (clicked["dwell_ms"] > 0).all()
    assert imp["clicked"].any()


def test_timestamps_are_ordered_and_in_the_past(small_world: tuple[Path, Path]) -> None:
    drop, _ = small_world
    cat, q, imp = (read_table(drop, c) for c in (CATALOG, QUERIES, IMPRESSIONS))
    manifest = read_drop_manifest(drop)
    start = pd.Timestamp(manifest["window"]["start"])
    end = pd.Timestamp(manifest["window"]["end"])
    assert (cat["listed_at"] < start).all()
    assert q["ts"].between(start, end).all() and q["ts"].is_monotonic_increasing
    m = imp.merge(q[["query_id", "ts"]], on="query_id", suffixes=("", "_q")).merge(
        cat[["item_id", "listed_at"]], on="item_id"
    )
    assert (m["ts"] >= m["ts_q"]).all()
    assert (m["ts"] >= m["listed_at"]).all()
    assert (imp["ts"] <= pd.Timestamp.now(tz="UTC")).all()


def test_listings_per_product_and_distinct_sellers(
    small_world: tuple[Path, Path], world_settings: WorldSettings
) -> None:
    t = _tables(*small_world)
    listings = t["catalog"].merge(t["item_truth"], on="item_id")
    per_sku = listings.groupby("sku")["seller_id"].agg(["size", "nunique"])
    assert per_sku["size"].between(world_settings.min_sellers, world_settings.max_sellers).all()
    assert (per_sku["size"] == per_sku["nunique"]).all()  # a seller lists a product once
    assert per_sku["size"].max() > 1  # products really are listed by several sellers
    assert (t["catalog"]["price"] > 0).all() and t["catalog"]["quality"].between(0, 1).all()
    assert (t["catalog"]["sales"] >= 0).all()
    # a listing's category is its product's category
    cats = listings.merge(t["products"], on="sku", suffixes=("", "_p"))
    assert (cats["category"] == cats["category_p"]).all()


def test_categories_predicted_and_selected(small_world: tuple[Path, Path]) -> None:
    t = _tables(*small_world)
    q = t["queries"].merge(t["query_truth"], on="query_id").merge(t["products"], on="sku")
    assert (q["predicted_category"] == q["category"]).mean() > 0.5  # right most of the time
    picked = q[q["selected_category"].notna()]
    assert (picked["selected_category"] == picked["category"]).all()
    assert q["selected_category"].isna().mean() > 0.5  # only sometimes


def test_query_truth_boxes_lie_inside_the_image(small_world: tuple[Path, Path]) -> None:
    qt = read_table(small_world[1], QUERY_TRUTH)
    assert (qt["box_x0"] >= 0).all() and (qt["box_y0"] >= 0).all()
    assert (qt["box_x1"] <= IMAGE_SIZE).all() and (qt["box_y1"] <= IMAGE_SIZE).all()
    assert (qt["box_x1"] - qt["box_x0"] >= 4).all() and (qt["box_y1"] - qt["box_y0"] >= 4).all()


def test_same_seed_same_bytes_whatever_the_workers(
    small_world: tuple[Path, Path],
    world_settings: WorldSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hash_tree: Callable[..., dict[str, str]],
) -> None:
    import vsearch.world.parallel as parallel

    monkeypatch.setattr(parallel, "MIN_IMAGES_PER_WORKER", 1)  # really use the process pool
    drop, truth = tmp_path / "d", tmp_path / "t"
    s = world_settings.model_copy(update={"chunk_size": 7})
    generate_world(s, drop, truth, seed=SEED, items=ITEMS, queries=QUERIES_N, workers=2)
    assert hash_tree(drop, truth) == hash_tree(*small_world)


def test_another_seed_gives_another_world(
    small_world: tuple[Path, Path],
    world_settings: WorldSettings,
    tmp_path: Path,
    hash_tree: Callable[..., dict[str, str]],
) -> None:
    drop = tmp_path / "d"
    generate_world(world_settings, drop, seed=SEED + 1, items=40, queries=10, workers=1)
    a, b = hash_tree(*small_world), hash_tree(drop, tmp_path / "d.truth")
    assert a["0/catalog.parquet"] != b["0/catalog.parquet"]
    assert a["0/images/queries/q-000000.jpg"] != b["0/images/queries/q-000000.jpg"]
    assert (
        json.loads((drop / "drop.json").read_text())["drop_id"]
        != read_drop_manifest(small_world[0])["drop_id"]
    )


def test_refuses_occupied_out_and_truth_inside_drop(
    world_settings: WorldSettings, tmp_path: Path
) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="not empty"):
        generate_world(world_settings, occupied, seed=1, items=12, queries=2)
    assert (occupied / "keep.txt").read_text() == "mine"
    with pytest.raises(BadInput, match="inside"):
        generate_world(
            world_settings, tmp_path / "d", tmp_path / "d" / "truth", seed=1, items=12, queries=2
        )
    with pytest.raises(BadInput, match="items"):
        generate_world(world_settings, tmp_path / "e", seed=1, items=0, queries=2)
    # --force replaces, and an empty folder is fine without it
    summary = generate_world(world_settings, occupied, seed=1, items=12, queries=2, force=True)
    assert not (occupied / "keep.txt").exists() and summary.items == 12
    assert not list(tmp_path.glob(".*partial"))  # no staging folders left behind


def test_event_window_moves_back_only_when_not_in_the_past() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert event_window("2026-10-01T00:00:00Z", 30, now) == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2026, 10, 31, tzinfo=UTC),
    )
    t0, t1 = event_window("2026-11-20T00:00:00Z", 30, now)
    assert t1 <= now - timedelta(days=1) and t1 - t0 == timedelta(days=30)
    assert t0.time() == datetime.min.time()  # shifted by whole days
    with pytest.raises(BadInput, match="ISO-8601"):
        event_window("yesterday", 3, now)


def test_summary_counts_match_files(small_world: tuple[Path, Path]) -> None:
    t = _tables(*small_world)
    clicks = int(t["impressions"]["clicked"].sum())
    assert clicks > 0
    assert 0 < clicks / len(t["impressions"]) < 0.5
    groups = t["products"]["lookalike_group"].value_counts()
    assert (groups > 1).any()
    assert np.isclose(
        t["query_truth"][["box_x0", "box_y0", "box_x1", "box_y1"]].to_numpy() % 1, 0
    ).all()
