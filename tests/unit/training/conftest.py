"""A tiny hand-made drop (+ mining outputs and a truth folder) and the kit's tiny settings.

Why hand-made instead of the demo world: these tests check the training code's behaviour
(shapes, labels, determinism, resume), which needs a few dozen 64 px images, not a shop;
drawing them takes milliseconds and keeps the suite fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from tests import kit
from vsearch.contracts import CATALOG, IMPRESSIONS, QUERIES, write_table
from vsearch.settings import Settings

SIZE = kit.TINY_NET["input_size"]
CATEGORIES = ("bag", "cup", "hat")
PRODUCTS_PER_CATEGORY = 2
SELLERS_PER_PRODUCT = 2
QUERIES_PER_PRODUCT = 3
COLORS = ((200, 40, 40), (40, 150, 60), (40, 60, 200), (220, 160, 30), (130, 50, 160), (20, 20, 20))


@dataclass(frozen=True)
class TinyWorld:
    drop: Path
    mining: Path
    truth: Path
    n_items: int
    n_queries: int


def tiny_settings(**train: object) -> Settings:
    """The kit's tiny settings with a larger validation share (the tiny drop has 18 queries)."""
    return kit.tiny_settings(**{"val_share": 0.2, **train})


def _product_image(
    category: int,
    color: tuple[int, int, int],
    rng: np.random.Generator,
    background: Image.Image,
    scale: float,
) -> tuple[Image.Image, tuple[int, ...]]:
    img = background.copy()
    draw = ImageDraw.Draw(img)
    side = int(SIZE * scale)
    x0 = int(rng.integers(2, SIZE - side - 1))
    y0 = int(rng.integers(2, SIZE - side - 1))
    box = (x0, y0, x0 + side, y0 + side)
    if category == 0:
        draw.rectangle(box, fill=color, outline=(10, 10, 10))
    elif category == 1:
        draw.ellipse(box, fill=color, outline=(10, 10, 10))
    else:
        draw.polygon([(x0, y0 + side), (x0 + side // 2, y0), (x0 + side, y0 + side)], fill=color)
    return img, box


def make_tiny_world(root: Path, seed: int = 0) -> TinyWorld:
    """Write a drop, its mining outputs (virtual IDs from 'clicks') and its truth."""
    rng = np.random.default_rng(seed)
    drop, mining, truth = root / "drop", root / "mining", root / "truth"
    for d in (drop / "images" / "catalog", drop / "images" / "queries", mining, truth):
        d.mkdir(parents=True, exist_ok=True)
    ts = datetime(2026, 10, 1, tzinfo=UTC)
    items, queries, item_truth, query_truth = [], [], [], []
    product = 0
    for c, cat in enumerate(CATEGORIES):
        for _ in range(PRODUCTS_PER_CATEGORY):
            color = COLORS[product % len(COLORS)]
            sku = f"sku-{product}"
            for s in range(SELLERS_PER_PRODUCT):
                item_id = f"item-{len(items):03d}"
                backdrop = Image.new("RGB", (SIZE, SIZE), (240, 240, 238))
                img, _ = _product_image(c, color, rng, backdrop, 0.6)
                rel = f"images/catalog/{item_id}.jpg"
                img.save(drop / rel, quality=95)
                items.append(
                    {
                        "item_id": item_id,
                        "category": cat,
                        "seller_id": f"seller-{s}",
                        "title": f"{cat} {product}",
                        "price": 10.0,
                        "image": rel,
                        "listed_at": ts,
                        "quality": 0.5,
                        "sales": 1,
                    }
                )
                item_truth.append({"item_id": item_id, "sku": sku})
            for _ in range(QUERIES_PER_PRODUCT):
                qid = f"q-{len(queries):03d}"
                noise = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
                img, box = _product_image(c, color, rng, Image.fromarray(noise), 0.45)
                rel = f"images/queries/{qid}.jpg"
                img.save(drop / rel, quality=70)
                queries.append(
                    {
                        "query_id": qid,
                        "image": rel,
                        "user_id": "u",
                        "session_id": f"s-{qid}",
                        "ts": ts,
                        "predicted_category": cat,
                    }
                )
                query_truth.append(
                    {
                        "query_id": qid,
                        "sku": sku,
                        "box_x0": box[0],
                        "box_y0": box[1],
                        "box_x1": box[2],
                        "box_y1": box[3],
                    }
                )
            product += 1
    cat_df, q_df = pd.DataFrame(items), pd.DataFrame(queries)
    write_table(cat_df, CATALOG, drop)
    write_table(q_df, QUERIES, drop)
    write_table(
        pd.DataFrame(
            {
                "event_id": ["e0"],
                "query_id": ["q-000"],
                "session_id": ["s-q-000"],
                "item_id": ["item-000"],
                "position": [0],
                "clicked": [True],
                "click_order": [0],
                "ts": [ts],
            }
        ),
        IMPRESSIONS,
        drop,
    )
    it, qt = pd.DataFrame(item_truth), pd.DataFrame(query_truth)
    it.to_parquet(truth / "item_truth.parquet")
    qt.to_parquet(truth / "query_truth.parquet")
    # "Mining": the first product's listings were never co-clicked (they stay singletons),
    # every other product's listings form one virtual ID; each query clicked its product.
    vids = it[it["sku"] != "sku-0"].assign(virtual_id=lambda d: "v:" + d["sku"], cluster_size=2)
    first_item = it.groupby("sku")["item_id"].min()
    qv = qt.assign(item_id=qt["sku"].map(first_item))
    qv = qv.merge(vids[["item_id", "virtual_id", "cluster_size"]], on="item_id")
    other = {sku: first_item[first_item.index != sku].iloc[0] for sku in first_item.index}
    pairs = pd.concat(
        [
            qv.assign(label=1, kind="first", weight=1.0)[
                ["query_id", "item_id", "label", "kind", "weight"]
            ],
            qt.assign(item_id=qt["sku"].map(other), label=0, kind="skip_above", weight=0.5)[
                ["query_id", "item_id", "label", "kind", "weight"]
            ],
        ]
    )
    kit.write_mining_outputs(
        mining,
        virtual_ids=vids[["item_id", "virtual_id", "cluster_size"]],
        query_virtual_ids=qv[["query_id", "item_id", "virtual_id", "cluster_size"]],
        pairs=pairs,
    )
    return TinyWorld(drop, mining, truth, len(items), len(queries))


@pytest.fixture(scope="session")
def make_settings():
    """``make_settings(**train_overrides)`` → tiny :class:`Settings`."""
    return tiny_settings


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    """The tiny drop, generated once per session (read-only for tests)."""
    return make_tiny_world(tmp_path_factory.mktemp("tiny_train_world"))


@pytest.fixture(scope="session")
def tiny_data(tiny_world: TinyWorld):
    """Training data of the tiny drop with click labels, loaded once."""
    from vsearch.training.data import load_click_labels

    s = tiny_settings()
    s.train.signals.skip_above = True  # off by default; the tests of its negatives need them
    return kit.train_data(tiny_world.drop, load_click_labels(tiny_world.mining), s)
