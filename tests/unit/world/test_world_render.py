"""Rendering: the product is really inside each query's true box, photos come from bundled
images only, silhouettes and logos tell products apart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vsearch.contracts import PRODUCTS_TRUTH, QUERY_TRUTH, read_drop_manifest, read_table
from vsearch.world.products import Product
from vsearch.world.render import (
    QUERY_STREAM,
    STUDIO_STREAM,
    StudioStyle,
    image_rng,
    render_query,
    render_studio,
)
from vsearch.world.shapes import CATEGORIES, GLYPHS, VARIANTS, glyph_mask, silhouette
from vsearch.world.sprites import product_sprite

pytestmark = pytest.mark.unit
SEED, IMAGE_SIZE = 11, 96  # as in conftest.small_world
SHOE = Product("shoe", 0, "red", "navy", "stripes", "star")


def _products(truth: Path) -> dict[str, Product]:
    df = read_table(truth, PRODUCTS_TRUTH)
    return {
        r.sku: Product(category=r.category, **json.loads(r.attributes))
        for r in df.itertuples(index=False)
    }


def test_query_files_show_the_product_inside_the_true_box(small_world: tuple[Path, Path]) -> None:
    """Re-render each query with and without its product: the file matches the scene, and the
    product changes the pixels inside the recorded box, not outside it."""
    drop, truth = small_world
    qt = read_table(truth, QUERY_TRUTH)
    products = _products(truth)
    distractors = json.loads((truth / "truth.json").read_text())["distractors"]
    quality = tuple(json.loads((truth / "truth.json").read_text())["world"]["query_jpeg_quality"])
    for q, row in enumerate(qt.head(25).itertuples(index=False)):
        d = distractors.get(row.query_id)
        args = (products[row.sku], products[d] if d else None, IMAGE_SIZE, quality)
        shot = render_query(*args, image_rng(SEED, QUERY_STREAM, q))
        empty = render_query(*args, image_rng(SEED, QUERY_STREAM, q), include_product=False)
        assert shot.box == (row.box_x0, row.box_y0, row.box_x1, row.box_y1)
        with Image.open(drop / f"images/queries/{row.query_id}.jpg") as im:
            saved = np.asarray(im.convert("RGB"), dtype=np.float32)
        assert np.abs(saved - np.asarray(shot.image, np.float32)).mean() < 12  # JPEG only
        diff = np.abs(np.asarray(shot.image, np.float32) - np.asarray(empty.image, np.float32))
        diff = diff.mean(axis=2)
        x0, y0, x1, y1 = shot.box
        inside = np.zeros(diff.shape, bool)
        inside[y0:y1, x0:x1] = True
        changed = diff > 12
        assert changed[inside].mean() > 0.15, row.query_id  # the product is there
        # outside the box only its soft shadow and blur spill change anything
        assert changed[~inside].sum() < 0.5 * changed[inside].sum(), row.query_id


def test_query_boxes_stay_in_frame_over_many_draws() -> None:
    for i in range(40):
        shot = render_query(SHOE, SHOE if i % 2 else None, 80, (35, 85), image_rng(1, 7, i))
        x0, y0, x1, y1 = shot.box
        assert 0 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 80
        assert 35 <= shot.jpeg_quality <= 85


def test_studio_shot_is_a_light_backdrop_with_the_product_inside() -> None:
    style = StudioStyle((240, 238, 235), 0.7, 3.0, (0.0, 0.0), 0.2, 0.05, False)
    img = np.asarray(render_studio(SHOE, style, 128, image_rng(1, STUDIO_STREAM, 0)), np.float32)
    corners = np.concatenate([img[:4, :4], img[:4, -4:]]).reshape(-1, 3)
    assert corners.min() > 200  # light studio backdrop
    assert (np.abs(img - img[0, 0]).sum(axis=2) > 60).mean() > 0.1  # and a product on it


def test_images_are_deterministic_per_index() -> None:
    a = render_query(SHOE, None, 64, (50, 50), image_rng(3, QUERY_STREAM, 5)).image
    b = render_query(SHOE, None, 64, (50, 50), image_rng(3, QUERY_STREAM, 5)).image
    c = render_query(SHOE, None, 64, (50, 50), image_rng(3, QUERY_STREAM, 6)).image
    assert a.tobytes() == b.tobytes() != c.tobytes()


def _parts(category: str, variant: int) -> np.ndarray:
    """The part label of each pixel (0 = background): outline and parts together."""
    sil = silhouette(category, variant, 64)
    stack = np.stack([np.zeros((64, 64), np.float32), *sil.masks.values()])
    roles = np.array([0, *sil.masks.keys()])
    return np.where(sil.alpha > 0.5, roles[stack.argmax(axis=0)], 0)


def test_every_category_and_variant_has_its_own_shape() -> None:
    parts = {(c, v): _parts(c, v) for c in CATEGORIES for v in range(VARIANTS)}
    keys = list(parts)
    for i, a in enumerate(keys):
        assert (parts[a] > 0).mean() > 0.04, a  # something is drawn
        for b in keys[i + 1 :]:
            differ = (parts[a] != parts[b]) & ((parts[a] > 0) | (parts[b] > 0))
            assert differ.sum() / ((parts[a] > 0) | (parts[b] > 0)).sum() > 0.03, (a, b)
        if a[1] == 0:  # categories differ in outline, not only in parts
            for b in keys[i + 1 :]:
                if b[0] != a[0]:
                    inter = ((parts[a] > 0) & (parts[b] > 0)).sum()
                    assert inter / ((parts[a] > 0) | (parts[b] > 0)).sum() < 0.85, (a, b)


def test_logos_differ_and_change_the_sprite() -> None:
    masks = [glyph_mask(g, 24) > 0.5 for g in GLYPHS]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert (masks[i] != masks[j]).mean() > 0.05, (GLYPHS[i], GLYPHS[j])
    other = Product("shoe", 0, "red", "navy", "stripes", "ring")
    a, b = product_sprite(SHOE, 96), product_sprite(other, 96)
    assert a.size == b.size and a.tobytes() != b.tobytes()


def test_drop_manifest_is_deterministic_metadata(small_world: tuple[Path, Path]) -> None:
    manifest = read_drop_manifest(small_world[0])
    assert manifest["created_at"] == manifest["window"]["end"]  # no wall-clock in the files
