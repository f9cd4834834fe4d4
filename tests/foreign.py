"""A shop that is not the demo world: a tiny drop generator of the tests' own.

Why: the pipeline must work on any shop's data, written by another program in the documented
contract format, without ground truth. This generator shares nothing with ``vsearch.world``:
its products are flat badges (a shape in two colours with a stripe count), photographed on
plain or checkered seller backgrounds; shopper photos are smaller, rotated, on speckled
noise, saved as low-quality JPEGs; its click model is its own (one list of 8 results per
query, the photographed product's listings clicked with a position-decayed probability, rare
noise clicks). The truth (which product each query shows) is returned to the caller, never
written into the drop.

``write_snapshot`` writes a full drop; ``write_delta`` a delta on top of one: new clicks, a
share of listings changed (new price and title), a share removed, a few new listings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from vsearch.contracts import CATALOG, IMPRESSIONS, QUERIES, REMOVED, write_table

SHAPES = ("disc", "diamond", "bar")  # one category per shape
PALETTE = (
    (200, 30, 30),
    (30, 140, 40),
    (30, 60, 200),
    (230, 180, 20),
    (120, 40, 160),
    (20, 170, 170),
    (240, 120, 30),
    (90, 90, 90),
)
SIDE = 64
LIST_LENGTH = 8


@dataclass
class ForeignShop:
    """What the generator knows and the pipeline never sees: listing and query -> product."""

    item_product: dict[str, str] = field(default_factory=dict)
    query_product: dict[str, str] = field(default_factory=dict)
    catalog: pd.DataFrame | None = None  # the catalog after the last drop written


def _badge(product: int, rng: np.random.Generator, *, shopper: bool) -> Image.Image:
    shape = SHAPES[product % len(SHAPES)]
    fg = PALETTE[product % len(PALETTE)]
    accent = PALETTE[(product // len(PALETTE) + 3) % len(PALETTE)]
    stripes = 1 + (product // (len(SHAPES) * len(PALETTE))) % 3
    if shopper:
        noise = rng.integers(60, 200, size=(SIDE, SIDE, 3), dtype=np.uint8)
        img = Image.fromarray(noise, "RGB")
    else:
        img = Image.new("RGB", (SIDE, SIDE), (245, 245, 240))
        if rng.random() < 0.5:  # a checkered seller backdrop
            d = ImageDraw.Draw(img)
            for x in range(0, SIDE, 16):
                for y in range((x // 16) % 2 * 16, SIDE, 32):
                    d.rectangle([x, y, x + 15, y + 15], fill=(225, 225, 230))
    layer = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    m = 12 if shopper else 6
    box = [m, m, SIDE - m, SIDE - m]
    if shape == "disc":
        d.ellipse(box, fill=fg)
    elif shape == "diamond":
        c = SIDE // 2
        d.polygon([(c, m), (SIDE - m, c), (c, SIDE - m), (m, c)], fill=fg)
    else:
        d.rectangle([m, SIDE // 3, SIDE - m, 2 * SIDE // 3], fill=fg)
    for k in range(stripes):
        y = m + (k + 1) * (SIDE - 2 * m) // (stripes + 1)
        d.line([(m + 4, y), (SIDE - m - 4, y)], fill=accent, width=3)
    if shopper:
        layer = layer.rotate(float(rng.uniform(-35, 35)))
    img.paste(layer, (0, 0), layer)
    return img


def _save(img: Image.Image, path: Path, jpeg_quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=jpeg_quality)


def _queries_and_clicks(
    shop: ForeignShop,
    folder: Path,
    catalog: pd.DataFrame,
    rng: np.random.Generator,
    prefix: str,
    n_queries: int,
    start: datetime,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    items = catalog["item_id"].to_numpy()
    products = catalog["item_id"].map(shop.item_product).to_numpy()
    queries, events = [], []
    for q in range(n_queries):
        qid = f"{prefix}-q{q:04d}"
        product = str(rng.choice(products))
        shop.query_product[qid] = product
        rel = f"photos/{qid}.jpg"
        _save(_badge(int(product.removeprefix("p")), rng, shopper=True), folder / rel, 40)
        ts = start + timedelta(minutes=5 * q)
        queries.append(
            {
                "query_id": qid,
                "image": rel,
                "user_id": f"u{int(rng.integers(0, 25))}",
                "session_id": f"{prefix}-s{q // 3}",
                "ts": ts,
                "predicted_category": str(rng.choice(SHAPES)),
            }
        )
        own = items[products == product]
        others = rng.choice(items[products != product], size=LIST_LENGTH, replace=False)
        shown = list(others[: LIST_LENGTH - 1])
        if rng.random() < 0.85:  # the engine found the product (one of its listings)
            shown.insert(int(rng.integers(0, LIST_LENGTH)), str(rng.choice(own)))
        else:
            shown.append(str(others[-1]))
        order = 0
        for pos, item in enumerate(shown):
            hit = shop.item_product[str(item)] == product
            p = (0.75 if hit else 0.02) / (1 + 0.3 * pos)
            clicked = bool(rng.random() < p)
            events.append(
                {
                    "event_id": f"{qid}-e{pos}",
                    "query_id": qid,
                    "session_id": f"{prefix}-s{q // 3}",
                    "item_id": str(item),
                    "position": pos,
                    "clicked": clicked,
                    "click_order": order if clicked else None,
                    "dwell_ms": int(rng.integers(500, 20000)) if clicked else None,
                    "ts": ts + timedelta(seconds=2 + pos),
                }
            )
            order += clicked
    imp = pd.DataFrame(events)
    imp["click_order"] = imp["click_order"].astype("Int64")
    imp["dwell_ms"] = imp["dwell_ms"].astype("Int64")
    return pd.DataFrame(queries), imp


def _listing(shop: ForeignShop, folder: Path, rng, item_id: str, product: int, t: datetime):
    shop.item_product[item_id] = f"p{product}"
    rel = f"images/{item_id}.jpg"
    _save(_badge(product, rng, shopper=False), folder / rel, 90)
    return {
        "item_id": item_id,
        "category": SHAPES[product % len(SHAPES)],
        "seller_id": f"seller{int(rng.integers(0, 6))}",
        "title": f"badge {product} by {item_id}",
        "price": float(rng.uniform(3, 60)),
        "image": rel,
        "listed_at": t,
        "quality": float(rng.uniform(0.2, 1.0)),
        "sales": int(rng.integers(0, 400)),
    }


def write_snapshot(
    folder: Path,
    *,
    drop_id: str,
    seed: int = 5,
    products: int = 24,
    queries: int = 40,
    start: datetime | None = None,
) -> ForeignShop:
    """A full drop: ``products`` badges listed by 1-2 sellers each, ``queries`` shopper photos."""
    rng = np.random.default_rng(seed)
    shop = ForeignShop()
    start = start or datetime.now(UTC) - timedelta(days=3)
    rows = []
    n = 0
    for p in range(products):
        for _ in range(1 + int(rng.random() < 0.5)):
            rows.append(_listing(shop, folder, rng, f"L{n:04d}", p, start - timedelta(days=30)))
            n += 1
    catalog = pd.DataFrame(rows)
    q, imp = _queries_and_clicks(shop, folder, catalog, rng, drop_id, queries, start)
    _write(folder, drop_id, "snapshot", start + timedelta(days=1), catalog, q, imp)
    shop.catalog = catalog
    return shop


def write_delta(
    shop: ForeignShop,
    folder: Path,
    *,
    drop_id: str,
    seed: int = 6,
    queries: int = 30,
    changed: float = 0.05,
    removed: float = 0.02,
    new_listings: int = 2,
    start: datetime | None = None,
) -> dict[str, list[str]]:
    """A delta on top of ``shop``'s catalog: new clicks, changed, removed and new listings.

    Returns:
        ``changed``, ``removed`` and ``new`` item ids (what the merged view must reflect).
    """
    rng = np.random.default_rng(seed)
    start = start or datetime.now(UTC) - timedelta(days=1)
    base = shop.catalog
    ids = base["item_id"].to_numpy()
    n_changed = max(1, round(changed * len(ids)))
    n_removed = max(1, round(removed * len(ids)))
    picked = rng.choice(ids, size=n_changed + n_removed, replace=False)
    changed_ids, removed_ids = list(picked[:n_changed]), list(picked[n_changed:])
    rows = []
    for item in changed_ids:
        row = base[base["item_id"] == item].iloc[0].to_dict()
        product = int(shop.item_product[item].removeprefix("p"))
        row.update(_listing(shop, folder, rng, item, product, row["listed_at"]))
        row["price"] = round(float(row["price"]) * 0.8, 2)  # a sale
        row["title"] = f"SALE {row['title']}"
        rows.append(row)
    new_ids = []
    for k in range(new_listings):
        item = f"{drop_id}-N{k}"
        product = int(rng.integers(0, len(set(shop.item_product.values()))))
        rows.append(_listing(shop, folder, rng, item, product, start - timedelta(hours=2)))
        new_ids.append(item)
    catalog = pd.DataFrame(rows)
    live = pd.concat([base[~base["item_id"].isin(changed_ids + removed_ids)], catalog])
    q, imp = _queries_and_clicks(shop, folder, live, rng, drop_id, queries, start)
    gone = pd.DataFrame({"item_id": removed_ids, "removed_at": [start] * len(removed_ids)})
    _write(folder, drop_id, "delta", start + timedelta(hours=12), catalog, q, imp, gone)
    shop.catalog = live.reset_index(drop=True)
    return {"changed": changed_ids, "removed": removed_ids, "new": new_ids}


def _write(folder, drop_id, kind, created, catalog, queries, imp, removed=None) -> None:
    write_table(catalog, CATALOG, folder)
    write_table(queries, QUERIES, folder)
    write_table(imp, IMPRESSIONS, folder)
    if removed is not None:
        write_table(removed, REMOVED, folder)
    manifest = {"drop_id": drop_id, "kind": kind, "created_at": created.isoformat()}
    (folder / "drop.json").write_text(json.dumps(manifest))


def fresh_photos(shop: ForeignShop, n: int, *, seed: int = 99) -> list[tuple[bytes, str]]:
    """``n`` shopper photos of listed products that no drop ever contained, with their truth.

    Why: recall must be measured on photos the pipeline never saw (neither mined, trained on,
    nor held out by its own split); the product each shows stays here, outside the pipeline.

    Returns:
        ``(jpeg bytes, product id)`` pairs, products drawn from the live catalog.
    """
    import io

    rng = np.random.default_rng(seed)
    live = sorted({shop.item_product[str(i)] for i in shop.catalog["item_id"]})
    out = []
    for _ in range(n):
        product = str(rng.choice(live))
        buf = io.BytesIO()
        _badge(int(product.removeprefix("p")), rng, shopper=True).save(buf, "JPEG", quality=40)
        out.append((buf.getvalue(), product))
    return out
