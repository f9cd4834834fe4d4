"""The eval set: held-out queries, what each one should find, and the catalog they search.

What it holds: the **held-out** queries only (:mod:`vsearch.split`: by default the newest
``split.eval_share`` of queries, which mining and training never load), with two kinds of
answer key:

* **clicks** (every shop): the listing the shopper clicked first on that query; a result is a
  hit when it is that listing or shares its virtual ID (mined from *training* clicks,
  :mod:`vsearch.mined`), and the clicked listing's catalog category is the category to
  predict;
* **truth** (demo worlds only): the true product, its category, its box and the number of
  catalog listings of that product (R of MAP@R). The ground truth is read here and nowhere
  else in evaluation.

With truth the rows are the held-out queries that have a truth row (all of them in a demo
world) and the click answers sit beside; without truth the rows are the held-out queries with a
click. Pixels are not loaded here (:mod:`vsearch.evaluation.measure` decodes them once per
input size). :attr:`EvalSet.eval_set_id` names the set (drop, split, queries and their answer
keys), so a figure always says what it was measured on and two models are only ever compared on
the same set.

Also here: the click-labelled *validation* queries that calibrate each model's fusion weight
(:func:`add_calibration_set`): on the training side of the split but kept out of training, so
neither trained on nor held out for evaluation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vsearch.contracts import (
    CATALOG,
    IMPRESSIONS,
    ITEM_TRUTH,
    PRODUCTS_TRUTH,
    QUERIES,
    QUERY_TRUTH,
    ContractError,
    has_truth,
    read_drop_manifest,
    read_table,
)
from vsearch.errors import BadInput
from vsearch.mined import has_virtual_ids, read_query_virtual_ids, read_virtual_ids
from vsearch.settings import Settings, SplitSettings
from vsearch.split import held_out_ids, is_held_out, validation_mask

log = logging.getLogger(__name__)

VID_LABEL = "vid:"  # click label of a listing in a mined virtual ID
ITEM_LABEL = "item:"  # click label of a listing in none (a hit only on itself)


@dataclass
class EvalSet:
    """The held-out queries with their answer keys, and the catalog they search (no pixels).

    Attributes:
        drop_id: the drop's id (``drop.json`` or the folder name).
        drop: the drop folder (image paths are relative to it).
        query_ids, query_images: the held-out queries evaluated (image paths relative).
        query_sku, query_category: each query's true product and its category (``""``
            without truth).
        true_boxes: ``float32[n, 4]`` normalised ``xyxy`` of the product in each query photo
            (NaN without truth).
        listings: ``int[n]`` catalog listings of each query's product (R of MAP@R; 0 without).
        catalog: the drop's catalog table.
        product_of: catalog ``item_id`` → true product (``sku``); empty without truth.
        without_truth: held-out queries left out for lack of a truth row (with truth).
        has_truth: whether the truth family of metrics applies.
        click_item: ``str[n]`` the listing clicked first on each query (``""``: no click).
        click_label: ``str[n]`` that listing's virtual ID label (``""``: no click, or the
            listing is not in the catalog, so no search can find it).
        click_category: ``str[n]`` the clicked listing's catalog category (``""`` as above).
        label_of: catalog ``item_id`` → click label (its virtual ID, else the listing itself).
        split: the split that held these queries out, in words (``time 0.2``).
        calib_images, calib_category: click-labelled *validation* queries (the category of
            their clicked listing) that calibrate each model's fusion weight: never trained on,
            never held out.
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
    has_truth: bool = True
    click_item: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    click_label: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    click_category: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    label_of: dict[str, str] = field(default_factory=dict)
    split: str = ""
    calib_images: list[str] = field(default_factory=list)
    calib_category: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))

    def __len__(self) -> int:
        return len(self.query_ids)

    @property
    def findable(self) -> np.ndarray:
        """Queries whose product has at least one listing (the only ones recall can find)."""
        return self.listings > 0

    @property
    def clicked(self) -> np.ndarray:
        """Queries with a click on a listing of the catalog (the click metrics' queries)."""
        if len(self.click_label) != len(self):
            return np.zeros(len(self), dtype=bool)
        return self.click_label != ""

    @property
    def eval_set_id(self) -> str:
        """``<drop>:<split>:<n>q:<hash>``: the same queries and answer keys, the same id."""
        keys = {
            "drop": self.drop_id,
            "split": self.split,
            "truth": self.has_truth,
            "queries": [str(q) for q in self.query_ids],
            "sku": [str(s) for s in self.query_sku],
            "click": [str(c) for c in self.click_label]
            if len(self.click_label) == len(self)
            else [],
        }
        digest = hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.drop_id}:{self.split.replace(' ', '')}:{len(self)}q:{digest}"

    def describe(self) -> dict[str, Any]:
        """The eval set in the report (``metrics.json`` ``eval_set``) and the gate report."""
        return {
            "id": self.eval_set_id,
            "drop": self.drop_id,
            "split": self.split,
            "queries": len(self),
            "click_queries": int(self.clicked.sum()),
            "truth": self.has_truth,
        }


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


def split_words(split: SplitSettings) -> str:
    """The split in words: ``time 0.2`` or ``hash 0.2 salt=holdout``."""
    if split.method == "hash":
        return f"hash {split.eval_share:g} salt={split.salt}"
    return f"{split.method} {split.eval_share:g}"


def first_clicks(impressions: pd.DataFrame, query_ids: set[str]) -> pd.Series:
    """``query_id -> item_id`` of the first click on each of ``query_ids`` that has one.

    The first click is ``click_order == 0``; where the order is missing, the earliest clicked
    row by ``ts`` then ``position``.
    """
    imp = impressions[impressions["clicked"].astype(bool)]
    imp = imp[imp["query_id"].astype(str).isin(query_ids)].copy()
    imp["query_id"] = imp["query_id"].astype(str)
    imp["_order"] = imp["click_order"].fillna(np.iinfo(np.int64).max)
    imp = imp.sort_values(["query_id", "_order", "ts", "position"], kind="mergesort")
    first = imp.drop_duplicates("query_id", keep="first")
    return pd.Series(first["item_id"].astype(str).to_numpy(), index=first["query_id"].to_numpy())


def click_labels(catalog: pd.DataFrame, mining: Path | None) -> dict[str, str]:
    """Catalog ``item_id`` -> click label: its mined virtual ID, else the listing itself."""
    items = catalog["item_id"].astype(str)
    vid: dict[str, str] = {}
    if mining is not None and has_virtual_ids(mining):
        v = read_virtual_ids(mining, columns=["item_id", "virtual_id"])
        vid = dict(zip(v["item_id"].astype(str), v["virtual_id"].astype(str), strict=True))
    elif mining is not None:
        log.warning("%s: no virtual IDs; a click hit is the clicked listing only", mining)
    return {i: f"{VID_LABEL}{vid[i]}" if i in vid else f"{ITEM_LABEL}{i}" for i in items}


def load_eval_set(
    drop: Path, truth: Path | None, split: SplitSettings, mining: Path | None = None
) -> EvalSet:
    """The held-out queries of ``drop``, with clicks and (when ``truth`` has it) truth.

    Args:
        drop: the drop folder (catalog, queries, impressions, images).
        truth: the drop's truth folder; ``None`` or a folder without truth tables (a drop
            ingested without truth: ``no_truth.json``) evaluates on clicks alone.
        split: the held-out split.
        mining: the mining outputs whose virtual IDs widen a click hit to the clicked
            listing's virtual ID; ``None``: a hit is the clicked listing only.

    Raises:
        BadInput: a folder or table is missing, no query is held out, or none of them can be
            scored (no truth row, or without truth no click).
    """
    if not drop.is_dir():
        raise BadInput(f"--drop {drop}: not a folder")
    if truth is not None and not truth.is_dir():
        raise BadInput(f"--truth {truth}: not a folder")
    with_truth = has_truth(truth)
    try:
        queries = read_table(drop, QUERIES)
        catalog = read_table(drop, CATALOG)
        impressions = read_table(drop, IMPRESSIONS)
        if with_truth:
            q_truth = read_table(truth, QUERY_TRUTH)
            i_truth = read_table(truth, ITEM_TRUTH)
            products = read_table(truth, PRODUCTS_TRUTH)
    except ContractError as exc:
        raise BadInput(str(exc)) from None
    queries["query_id"] = queries["query_id"].astype(str)
    held = queries[is_held_out(queries, split)]
    if held.empty:
        raise BadInput(
            f"{drop}: no held-out queries (split.eval_share={split.eval_share}); "
            "evaluation needs queries the model never trained on"
        )
    clicks = first_clicks(impressions, set(held["query_id"]))
    label_of = click_labels(catalog, mining)
    category_of = dict(
        zip(catalog["item_id"].astype(str), catalog["category"].astype(str), strict=False)
    )
    n_held = len(held)
    if with_truth:
        joined = held.merge(q_truth, on="query_id", how="inner").sort_values("query_id")
        if joined.empty:
            raise BadInput(f"{truth}: none of the {n_held} held-out queries has a truth row")
    else:
        joined = held[held["query_id"].isin(clicks.index)].sort_values("query_id")
        if joined.empty:
            raise BadInput(
                f"{drop}: none of the {n_held} held-out queries has a click; without ground "
                "truth the evaluation scores clicked queries only"
            )
    qids = joined["query_id"].to_numpy(dtype=str)
    images = joined["image"].astype(str).tolist()
    n = len(joined)
    click_item = np.array([clicks.get(q, "") for q in qids], dtype=object).astype(str)
    click_label = np.array([label_of.get(i, "") for i in click_item], dtype=object).astype(str)
    click_category = np.array(
        [
            category_of.get(i, "") if lab else ""
            for i, lab in zip(click_item, click_label, strict=True)
        ],
        dtype=object,
    ).astype(str)
    manifest = read_drop_manifest(drop)
    common: dict[str, Any] = {
        "drop_id": str(manifest.get("drop_id") or drop.name),
        "drop": drop,
        "query_ids": qids,
        "query_images": images,
        "catalog": catalog,
        "click_item": click_item,
        "click_label": click_label,
        "click_category": click_category,
        "label_of": label_of,
        "split": split_words(split),
    }
    if not with_truth:
        return EvalSet(
            **common,
            query_sku=np.full(n, "", dtype=str),
            query_category=np.full(n, "", dtype=str),
            true_boxes=np.full((n, 4), np.nan, dtype=np.float32),
            listings=np.zeros(n, dtype=np.int64),
            product_of={},
            has_truth=False,
        )
    sku_category = dict(
        zip(products["sku"].astype(str), products["category"].astype(str), strict=True)
    )
    item_ids = catalog["item_id"].astype(str)
    item_sku = dict(zip(i_truth["item_id"].astype(str), i_truth["sku"].astype(str), strict=True))
    product_of = {i: item_sku[i] for i in item_ids if i in item_sku}
    per_sku = pd.Series(list(product_of.values()), dtype=str).value_counts()
    sku = joined["sku"].astype(str).to_numpy()
    wh = _image_sizes(drop, images)
    px = joined[["box_x0", "box_y0", "box_x1", "box_y1"]].to_numpy(np.float64)
    boxes = np.clip(px / np.concatenate([wh, wh], axis=1), 0.0, 1.0).astype(np.float32)
    return EvalSet(
        **common,
        query_sku=sku,
        query_category=np.array([sku_category.get(s, "") for s in sku], dtype=str),
        true_boxes=boxes,
        listings=np.array([int(per_sku.get(s, 0)) for s in sku], dtype=np.int64),
        product_of=product_of,
        without_truth=n_held - n,
        has_truth=True,
    )


def add_calibration_set(ev: EvalSet, drop: Path, mining: Path, settings: Settings) -> None:
    """The training run's validation queries (click-labelled, never trained on) for calibration.

    Why those: the classifier was trained on every other click-labelled training query, so on
    them it looks right whatever the vote says and the calibration would always pick the
    classifier alone. The validation queries (:func:`vsearch.split.validation_mask`:
    ``train.val_share`` of them by a hash of the id and ``project.seed``, the same ones the
    training run kept out) are unseen by the model, like a shopper's photo, and are not the
    evaluation's held-out queries either.

    Sets ``ev.calib_images`` and ``ev.calib_category`` (the clicked listing's category), at
    most ``evaluation.calibration_queries`` of them; without mined query virtual IDs or
    validation queries the fusion weight stays the one in params (a warning says so).
    """
    clicks = read_query_virtual_ids(mining, columns=["query_id", "item_id"])
    if clicks is None:
        log.warning("%s: no query_virtual_ids; fusion weight from params", mining)
        return
    clicks = clicks.astype(str)
    queries = read_table(drop, QUERIES)
    queries["query_id"] = queries["query_id"].astype(str)
    clicks = clicks[~clicks["query_id"].isin(held_out_ids(queries, settings.split))]
    val = validation_mask(clicks["query_id"], settings.train.val_share, settings.project.seed)
    clicks = clicks[val]
    category = dict(
        zip(ev.catalog["item_id"].astype(str), ev.catalog["category"].astype(str), strict=False)
    )
    clicks = clicks[clicks["item_id"].isin(category)]
    if clicks.empty:
        log.warning(
            "no click-labelled validation queries (train.val_share=%g); fusion weight from params",
            settings.train.val_share,
        )
        return
    n = min(len(clicks), settings.evaluation.calibration_queries)
    clicks = clicks.sample(n=n, random_state=settings.project.seed) if n < len(clicks) else clicks
    joined = clicks.merge(queries[["query_id", "image"]].astype(str), on="query_id", how="inner")
    ev.calib_images = joined["image"].tolist()
    ev.calib_category = joined["item_id"].map(category).to_numpy(dtype=str)
    log.info("fusion calibration on %d click-labelled validation queries", len(joined))
