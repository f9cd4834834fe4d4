"""A contact sheet of a drop: products, their seller listings, and queries with true boxes.

Why: numbers do not show what the model will face. One picture of look-alikes side by side,
each seller's photo of the same product, and the messy shopper shots (with the true box drawn)
tells a person at a glance whether the world is hard in the right ways.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from vsearch.contracts import (
    CATALOG,
    ITEM_TRUTH,
    PRODUCTS_TRUTH,
    QUERIES,
    QUERY_TRUTH,
    ContractError,
    read_drop_manifest,
    read_table,
)
from vsearch.errors import BadInput
from vsearch.world.products import ATTRIBUTES

THUMB = 128  # thumbnail side in pixels
GAP = 6
LABEL_WIDTH = 210
HEADER = 34
FONT_SIZE = 12
MAX_LISTINGS = 5  # listing thumbnails per product row
MAX_QUERIES = 3  # query thumbnails per product row
MAX_ROWS = 8
LOOKALIKE_GROUPS = 2  # rows are first spent on this many look-alike groups, shown together
BOX_COLOR = (255, 40, 40)
BOX_WIDTH = 2
BACKGROUND = (250, 250, 248)
MISSING_FILL = (200, 200, 200)  # stands in for an unreadable image
INK = (30, 30, 30)
GROUP_INK = (170, 20, 120)


def _font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _thumb(drop: Path, rel: str, box: tuple[float, ...] | None = None) -> Image.Image:
    """A square thumbnail of a drop image, with the true box drawn if given."""
    path = drop / rel
    try:
        with Image.open(path) as im:
            img = im.convert("RGB")
    except OSError:
        img = Image.new("RGB", (THUMB, THUMB), MISSING_FILL)
        ImageDraw.Draw(img).text((8, THUMB // 2), "missing", fill=INK, font=_font())
        return img
    scale = THUMB / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    if box is not None:
        ImageDraw.Draw(img).rectangle([v * scale for v in box], outline=BOX_COLOR, width=BOX_WIDTH)
    return img


def _pick_products(products: pd.DataFrame, listings: pd.DataFrame, queries: pd.DataFrame) -> list:
    """Rows to show: whole look-alike groups first (subtle differences), then busy products."""
    n_listings = listings["sku"].value_counts()
    n_queries = queries["sku"].value_counts()
    p = products.assign(
        listings=products["sku"].map(n_listings).fillna(0),
        queries=products["sku"].map(n_queries).fillna(0),
    )
    p = p[(p["listings"] > 0) & (p["queries"] > 0)]
    sizes = p["lookalike_group"].map(p["lookalike_group"].value_counts())
    rows: list[str] = []
    for _, members in p[sizes > 1].groupby("lookalike_group", sort=True):
        if len(rows) // 2 >= LOOKALIKE_GROUPS or len(rows) + len(members) > MAX_ROWS:
            break
        rows.extend(members["sku"])
    rest = p[~p["sku"].isin(rows)].sort_values(["queries", "sku"], ascending=[False, True])
    rows.extend(rest["sku"].head(MAX_ROWS - len(rows)))
    return rows


def _label(product: pd.Series, group_diff: str | None) -> str:
    attrs = json.loads(product["attributes"])
    lines = [
        f"{product['sku']}  {product['category']}",
        f"shape {attrs['variant']}  {attrs['body']}/{attrs['accent']}",
        f"{attrs['pattern']}, logo {attrs['logo']}",
    ]
    if group_diff:
        lines.append(f"look-alike {product['lookalike_group']}")
        lines.append(f"differs in: {group_diff}")
    return "\n".join(lines)


def _group_difference(products: pd.DataFrame, group: str) -> str | None:
    members = [
        json.loads(a) for a in products.loc[products["lookalike_group"] == group, "attributes"]
    ]
    if len(members) < 2:
        return None
    diff = [a for a in ATTRIBUTES if len({json.dumps(m[a]) for m in members}) > 1]
    return ", ".join(diff)


def render_preview(drop: Path, truth: Path | None, out_png: Path) -> Path:
    """Write a contact sheet PNG of ``drop`` (with true boxes when ``truth`` is given).

    With truth, each row is one product: its label, its sellers' listing photos and shopper
    queries of it with the true box in red; look-alike groups come first, in adjacent rows.
    Without truth, it shows a grid of listings and a grid of queries.

    Raises:
        BadInput: the drop (or truth) folder is not readable in the contract format.
    """
    try:
        catalog = read_table(drop, CATALOG)
        queries = read_table(drop, QUERIES)
        truth_tables = None
        if truth is not None:
            truth_tables = (
                read_table(truth, ITEM_TRUTH),
                read_table(truth, QUERY_TRUTH),
                read_table(truth, PRODUCTS_TRUTH),
            )
    except ContractError as exc:
        raise BadInput(f"cannot preview: {exc}") from None
    manifest = read_drop_manifest(drop)
    title = f"{manifest.get('drop_id', drop.name)}: {len(catalog)} listings, {len(queries)} queries"
    font = _font()
    cols = 1 + MAX_LISTINGS + MAX_QUERIES
    width = LABEL_WIDTH + cols * (THUMB + GAP)
    tiles: list[tuple[str, list[tuple[Image.Image, bool]]]] = []

    if truth_tables is None:
        per_row = cols
        for name, df in (("listings", catalog), ("queries", queries)):
            for start in range(0, min(len(df), per_row * 2), per_row):
                imgs = [(_thumb(drop, r), False) for r in df["image"].iloc[start : start + per_row]]
                tiles.append((name if start == 0 else "", imgs))
    else:
        item_truth, query_truth, products = truth_tables
        listings = catalog.merge(item_truth, on="item_id")
        qt = queries.merge(query_truth, on="query_id")
        products = products.set_index("sku", drop=False)
        for sku in _pick_products(products.reset_index(drop=True), listings, qt):
            prod = products.loc[sku]
            diff = _group_difference(products, prod["lookalike_group"])
            imgs = [
                (_thumb(drop, r), False)
                for r in listings.loc[listings["sku"] == sku, "image"].head(MAX_LISTINGS)
            ]
            imgs += [(Image.new("RGB", (THUMB, THUMB), BACKGROUND), False)] * (
                MAX_LISTINGS - len(imgs)
            )
            for r in qt[qt["sku"] == sku].head(MAX_QUERIES).itertuples(index=False):
                box = (r.box_x0, r.box_y0, r.box_x1, r.box_y1)
                imgs.append((_thumb(drop, r.image, box), True))
            tiles.append((_label(prod, diff), imgs))

    height = HEADER + len(tiles) * (THUMB + GAP) + GAP
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    subtitle = "label | seller listings | shopper queries (true box in red)" if truth else ""
    draw.text((GAP, GAP), f"{title}    {subtitle}", fill=INK, font=_font(FONT_SIZE + 2))
    for r, (label, imgs) in enumerate(tiles):
        y = HEADER + r * (THUMB + GAP)
        ink = GROUP_INK if "look-alike" in label else INK
        draw.multiline_text((GAP, y + GAP), label, fill=ink, font=font, spacing=3)
        for c, (img, _) in enumerate(imgs):
            x = LABEL_WIDTH + c * (THUMB + GAP)
            sheet.paste(img, (x + (THUMB - img.width) // 2, y + (THUMB - img.height) // 2))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_png, "PNG")
    return out_png
