"""The eval set: held-out queries joined with the demo world's truth, and the catalog they search.

What it holds: the **held-out** demo queries only (:mod:`vsearch.split`: the queries training
never loads), each with its true product, that product's category, its true box and the number
of catalog listings of that product (R of MAP@R). The ground truth is read here and nowhere
else in evaluation. Pixels are not loaded here (:mod:`vsearch.evaluation.measure` decodes them
once per input size).

Also here: the click-labelled *training* queries that calibrate each model's fusion weight
(:func:`add_calibration_set`), never held-out ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

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
from vsearch.mined import read_query_virtual_ids
from vsearch.settings import Settings, SplitSettings
from vsearch.split import is_held_out

log = logging.getLogger(__name__)


@dataclass
class EvalSet:
    """The held-out queries with their truth, and the catalog they search (no pixels).

    Attributes:
        drop_id: the drop's id (``drop.json`` or the folder name).
        drop: the drop folder (image paths are relative to it).
        query_ids, query_images: held-out queries that have a truth row (image paths relative).
        query_sku, query_category: each query's true product and that product's category.
        true_boxes: ``float32[n, 4]`` normalised ``xyxy`` of the product in each query photo.
        listings: ``int[n]`` catalog listings of each query's product (R of MAP@R).
        catalog: the drop's catalog table.
        product_of: catalog ``item_id`` → true product (``sku``).
        without_truth: held-out queries left out for lack of a truth row.
        calib_images, calib_category: click-labelled *training* queries (the category of their
            clicked listing) that calibrate each model's fusion weight; never held-out ones.
    """

    drop_id: str
    drop: Path
    query_ids: np.ndarray
    query_images: list[str]
    query_sku: np.ndarray
    query_category: np.ndarray
    true_boxes: np.ndarray
    listings: np.ndarray
    catalog: pd.DataFrame
    product_of: dict[str, str]
    without_truth: int = 0
    calib_images: list[str] = field(default_factory=list)
    calib_category: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))

    def __len__(self) -> int:
        return len(self.query_ids)

    @property
    def findable(self) -> np.ndarray:
        """Queries whose product has at least one listing (the only ones recall can find)."""
        return self.listings > 0


def _image_sizes(drop: Path, paths: Sequence[str]) -> np.ndarray:
    """``float[n, 2]`` (width, height) of image files as displayed (EXIF orientation
    applied, as the decode does), from their headers only."""
    from PIL import Image

    from vsearch.search.images import displayed_size

    sizes = np.empty((len(paths), 2), dtype=np.float64)
    for i, rel in enumerate(paths):
        try:
            with Image.open(drop / rel) as img:
                sizes[i] = displayed_size(img)
        except OSError as exc:
            raise BadInput(f"{drop / rel}: cannot read image ({exc}); validate the drop") from None
    return sizes


def load_eval_set(drop: Path, truth: Path, split: SplitSettings) -> EvalSet:
    """The held-out queries of ``drop`` joined with the truth in ``truth``.

    Raises:
        BadInput: a folder or table is missing, or no held-out query has a truth row.
    """
    for name, folder in (("--drop", drop), ("--truth", truth)):
        if not folder.is_dir():
            raise BadInput(f"{name} {folder}: not a folder")
    try:
        queries = read_table(drop, QUERIES)
        catalog = read_table(drop, CATALOG)
        q_truth = read_table(truth, QUERY_TRUTH)
        i_truth = read_table(truth, ITEM_TRUTH)
        products = read_table(truth, PRODUCTS_TRUTH)
    except ContractError as exc:
        raise BadInput(str(exc)) from None
    queries["query_id"] = queries["query_id"].astype(str)
    held = queries[is_held_out(queries["query_id"], split)]
    if held.empty:
        raise BadInput(
            f"{drop}: no held-out queries (split.holdout_share={split.holdout_share}); "
            "evaluation needs queries the model never trained on"
        )
    joined = held.merge(q_truth, on="query_id", how="inner").sort_values("query_id")
    if joined.empty:
        raise BadInput(f"{truth}: none of the {len(held)} held-out queries has a truth row")
    sku_category = dict(
        zip(products["sku"].astype(str), products["category"].astype(str), strict=True)
    )
    item_ids = catalog["item_id"].astype(str)
    item_sku = dict(zip(i_truth["item_id"].astype(str), i_truth["sku"].astype(str), strict=True))
    product_of = {i: item_sku[i] for i in item_ids if i in item_sku}
    per_sku = pd.Series(list(product_of.values()), dtype=str).value_counts()
    sku = joined["sku"].astype(str).to_numpy()
    images = joined["image"].astype(str).tolist()
    wh = _image_sizes(drop, images)
    px = joined[["box_x0", "box_y0", "box_x1", "box_y1"]].to_numpy(np.float64)
    boxes = np.clip(px / np.concatenate([wh, wh], axis=1), 0.0, 1.0).astype(np.float32)
    manifest = read_drop_manifest(drop)
    return EvalSet(
        drop_id=str(manifest.get("drop_id") or drop.name),
        drop=drop,
        query_ids=joined["query_id"].to_numpy(dtype=str),
        query_images=images,
        query_sku=sku,
        query_category=np.array([sku_category.get(s, "") for s in sku], dtype=str),
        true_boxes=boxes,
        listings=np.array([int(per_sku.get(s, 0)) for s in sku], dtype=np.int64),
        catalog=catalog,
        product_of=product_of,
        without_truth=len(held) - len(joined),
    )


def add_calibration_set(ev: EvalSet, drop: Path, mining: Path, settings: Settings) -> None:
    """Click-labelled training queries (mined first clicks, never held out) for calibration.

    Sets ``ev.calib_images`` and ``ev.calib_category``; without mined query virtual IDs the
    fusion weight stays the one in params (a warning says so).
    """
    clicks = read_query_virtual_ids(mining, columns=["query_id", "item_id"])
    if clicks is None:
        log.warning("%s: no query_virtual_ids; fusion weight from params", mining)
        return
    clicks = clicks.astype(str)
    clicks = clicks[~is_held_out(clicks["query_id"], settings.split)]
    category = dict(
        zip(ev.catalog["item_id"].astype(str), ev.catalog["category"].astype(str), strict=False)
    )
    clicks = clicks[clicks["item_id"].isin(category)]
    n = min(len(clicks), settings.evaluation.calibration_queries)
    clicks = clicks.sample(n=n, random_state=settings.project.seed) if n < len(clicks) else clicks
    queries = read_table(drop, QUERIES)[["query_id", "image"]].astype(str)
    joined = clicks.merge(queries, on="query_id", how="inner")
    ev.calib_images = joined["image"].tolist()
    ev.calib_category = joined["item_id"].map(category).to_numpy(dtype=str)
    log.info("fusion calibration on %d click-labelled training queries", len(joined))
