"""Training data: catalog and query photos with the labels clicks give them, cached in memory.

Signals (docs/learning.md#training):

* every catalog listing has its seller's **category** and, from click mining, a **virtual ID**
  (listings co-clicked for the same photos); a listing no query clicked is its own class,
  which still teaches the network that two augmentations of one photo are one product;
* a query photo is a positive of its first click's virtual ID, and is one more *sample* per
  switch click, labelled with that listing's virtual ID; each sample weighs what mining
  computed: the click type's weight over the click position's examination propensity (inverse
  propensity weighting), normalised to mean 1 over the training samples;
* its **skip-above negatives** (shown above the click, not clicked) are forced hard negatives
  of the pair losses; its category is the clicked listing's category;
* ``train.signals`` switches each of these off (an ablation, bench/ablate_clicks.py);
* ground truth (the demo world's truth folder) is never read here, except by
  :func:`oracle_labels` for the explicit *oracle* run that measures the upper bound.

Why a memory cache of ``uint8`` tensors at the model's input size: decoding JPEGs every step
would cost more than the network on 2 cores; 6k photos at 192 px take ~0.7 GB.

Held-out queries (:mod:`vsearch.split`) are never loaded: evaluation measures on them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vsearch.contracts import CATALOG, QUERIES, read_table
from vsearch.errors import BadInput
from vsearch.mined import (
    KIND_FIRST,
    KIND_SWITCH,
    NEGATIVE,
    PAIRS_FILE,
    QUERY_VIRTUAL_IDS_FILE,
    VIRTUAL_IDS_FILE,
    has_virtual_ids,
    read_pairs,
    read_query_virtual_ids,
    read_virtual_ids,
)
from vsearch.search.images import decode_images
from vsearch.settings import SignalSettings, SplitSettings
from vsearch.split import is_held_out, validation_mask
from vsearch.training.augment import Matte, studio_matte

log = logging.getLogger(__name__)

FIRST_CLICK_KINDS = (KIND_FIRST,)
PROPENSITY = "propensity"  # the pairs table's examination-propensity column (vsearch.mining)


@dataclass(frozen=True)
class ClickLabels:
    """Identity labels for training, from mining (or from the truth, in oracle mode).

    Attributes:
        item_vid: item_id → virtual ID (listings without one become their own class).
        query_vid: query_id → virtual ID of its first click (queries without a click absent).
        negatives: query_id → item_ids shown above its click and skipped.
        source: ``"clicks"``, ``"oracle"`` or ``"category"``, recorded with the run.
        clicks: the mined positives (``query_id, item_id, kind, propensity, weight``), which
            give the samples their weights and the switch-click samples; ``None`` when the
            labels are not clicks (every query then is one sample of weight 1).
    """

    item_vid: dict[str, str]
    query_vid: dict[str, str]
    negatives: dict[str, list[str]] = field(default_factory=dict)
    source: str = "clicks"
    clicks: pd.DataFrame | None = None


def _negatives(pairs: pd.DataFrame) -> dict[str, list[str]]:
    neg = pairs[pairs["label"] == NEGATIVE]
    return {q: list(g["item_id"]) for q, g in neg.groupby("query_id", sort=False)}


def load_click_labels(mining_dir: Path) -> ClickLabels:
    """Read the mining stage's outputs (``virtual_ids``, ``query_virtual_ids``, ``pairs``).

    Raises:
        BadInput: the folder lacks the virtual IDs (run ``vsearch mine`` first).
    """
    if not has_virtual_ids(mining_dir):
        raise BadInput(f"{mining_dir}: no {VIRTUAL_IDS_FILE}; run `vsearch mine` on the drop first")
    vids = read_virtual_ids(mining_dir, columns=["item_id", "virtual_id"])
    item_vid = dict(zip(vids["item_id"].astype(str), vids["virtual_id"].astype(str), strict=True))
    pairs = read_pairs(mining_dir)
    if pairs is None:
        pairs = pd.DataFrame()
    qv = read_query_virtual_ids(mining_dir, columns=["query_id", "virtual_id"])
    if qv is not None:
        qv = qv.dropna()
        query_vid = dict(zip(qv["query_id"].astype(str), qv["virtual_id"].astype(str), strict=True))
    elif len(pairs):
        first = pairs[(pairs["label"] != NEGATIVE) & pairs["kind"].isin(FIRST_CLICK_KINDS)]
        query_vid = {
            str(q): item_vid.get(str(i), str(i))
            for q, i in zip(first["query_id"], first["item_id"], strict=True)
        }
    else:
        raise BadInput(f"{mining_dir}: neither {QUERY_VIRTUAL_IDS_FILE} nor {PAIRS_FILE} found")
    negatives = _negatives(pairs) if len(pairs) else {}
    clicks = None
    if len(pairs) and {PROPENSITY, "weight"} <= set(pairs.columns):
        clicks = pairs.loc[pairs["label"] != NEGATIVE, list(_CLICK_COLUMNS)].reset_index(drop=True)
    return ClickLabels(item_vid, query_vid, negatives, source="clicks", clicks=clicks)


_CLICK_COLUMNS = ("query_id", "item_id", "kind", PROPENSITY, "weight")
LISTING_CLASS_PREFIX = "item:"


def per_listing_labels(labels: ClickLabels) -> ClickLabels:
    """The same clicks with every listing its own class (``train.signals.virtual_ids: false``).

    A query's class is then its first-clicked listing itself, so only the clicked listing is
    a positive; another seller's copy of the product is just another class.

    Raises:
        BadInput: the labels carry no click table (nothing says which listing was clicked).
    """
    if labels.clicks is None:
        raise BadInput(
            "train.signals.virtual_ids: false needs the mined pairs (pairs.parquet with "
            "propensity and weight); run `vsearch mine` again"
        )
    first = labels.clicks[labels.clicks["kind"] == KIND_FIRST]
    query_item = {
        str(q): LISTING_CLASS_PREFIX + str(i)
        for q, i in zip(first["query_id"], first["item_id"], strict=True)
    }
    return ClickLabels({}, query_item, labels.negatives, source=labels.source, clicks=labels.clicks)


def click_samples(
    labels: ClickLabels, query_ids: np.ndarray, signals: SignalSettings
) -> pd.DataFrame:
    """One row per training sample of the given queries: ``row, vid, weight``.

    ``row`` indexes ``query_ids``; every query has its first-click sample (class
    ``labels.query_vid``); each switch click adds one labelled with the clicked listing's
    class. Weights multiply the click type's weight (``click_type``) and
    the inverse propensity (``propensity``), then are scaled to mean 1 so the balance between
    query and catalog slots stays that of unweighted training. Samples of weight 0 (e.g.
    ``mining.switch_click_weight: 0``) are dropped.
    """
    rows = pd.DataFrame(
        {
            "row": np.arange(len(query_ids)),
            "query_id": query_ids,
            "vid": [labels.query_vid[q] for q in query_ids],
            "kind": KIND_FIRST,
            "ipw": 1.0,
            "type_weight": 1.0,
        }
    )
    if labels.clicks is not None and len(labels.clicks):
        c = labels.clicks[labels.clicks["query_id"].isin(set(query_ids))]
        prop = c[PROPENSITY].clip(lower=np.finfo(float).tiny)
        c = c.assign(ipw=1.0 / prop, type_weight=c["weight"] * prop)
        first = c[c["kind"] == KIND_FIRST].drop_duplicates("query_id").set_index("query_id")
        rows["ipw"] = rows["query_id"].map(first["ipw"]).fillna(1.0).to_numpy()
        rows["type_weight"] = rows["query_id"].map(first["type_weight"]).fillna(1.0).to_numpy()
        switch = c[c["kind"] == KIND_SWITCH]
        if len(switch):
            row_of = pd.Series(np.arange(len(query_ids)), index=query_ids)
            extra = pd.DataFrame(
                {
                    "row": switch["query_id"].map(row_of).to_numpy(),
                    "query_id": switch["query_id"].to_numpy(),
                    "vid": [
                        labels.item_vid.get(str(i), LISTING_CLASS_PREFIX + str(i))
                        for i in switch["item_id"]
                    ],
                    "kind": KIND_SWITCH,
                    "ipw": switch["ipw"].to_numpy(),
                    "type_weight": switch["type_weight"].to_numpy(),
                }
            )
            rows = pd.concat([rows, extra], ignore_index=True)
            # a switch click on the first click's class adds nothing but weight: keep one
            rows = rows.drop_duplicates(["row", "vid"], keep="first")
    weight = np.ones(len(rows))
    if signals.propensity:
        weight = weight * rows["ipw"].to_numpy()
    if signals.click_type:
        weight = weight * rows["type_weight"].to_numpy()
    rows["weight"] = weight
    rows = rows[rows["weight"] > 0]
    if len(rows):
        rows["weight"] = rows["weight"] / rows["weight"].mean()
    return rows[["row", "vid", "weight"]].reset_index(drop=True)


def oracle_labels(truth_dir: Path, mining_dir: Path | None = None) -> ClickLabels:
    """True product ids as classes: the *oracle* upper bound (never the default).

    Skip-above negatives still come from mining when its folder is given (they are clicks).
    """
    items = pd.read_parquet(truth_dir / "item_truth.parquet", columns=["item_id", "sku"])
    queries = pd.read_parquet(truth_dir / "query_truth.parquet", columns=["query_id", "sku"])
    negatives: dict[str, list[str]] = {}
    pairs = read_pairs(mining_dir) if mining_dir is not None else None
    if pairs is not None:
        negatives = _negatives(pairs)
    item_sku = dict(zip(items["item_id"].astype(str), items["sku"].astype(str), strict=True))
    negatives = {
        q: [i for i in items_ if item_sku.get(i) != sku]
        for q, sku in zip(queries["query_id"], queries["sku"], strict=True)
        if (items_ := negatives.get(q))
    }
    return ClickLabels(
        item_vid=item_sku,
        query_vid=dict(
            zip(queries["query_id"].astype(str), queries["sku"].astype(str), strict=True)
        ),
        negatives=negatives,
        source="oracle",
    )


def category_labels(drop: Path, mining_dir: Path) -> ClickLabels:
    """Categories as the only identity: the *category-only* baseline (what clicks add).

    Every listing's class is its seller's category and a clicked query's class is its click's
    category, so the metric losses learn "same category", never "same product". Skip-above
    negatives are kept only where they are of another category (same-category ones would
    contradict the labels).
    """
    clicks = load_click_labels(mining_dir)
    catalog = read_table(drop, CATALOG)
    item_cat = dict(
        zip(catalog["item_id"].astype(str), catalog["category"].astype(str), strict=True)
    )
    vid_cat = (
        pd.Series({i: item_cat[i] for i in clicks.item_vid if i in item_cat})
        .groupby(lambda i: clicks.item_vid[i])
        .agg(lambda s: s.value_counts().index[0])
    )
    query_cat = {q: vid_cat[v] for q, v in clicks.query_vid.items() if v in vid_cat.index}
    negatives = {
        q: kept
        for q, items in clicks.negatives.items()
        if q in query_cat and (kept := [i for i in items if item_cat.get(i) != query_cat[q]])
    }
    return ClickLabels(item_cat, query_cat, negatives, source="category")


@dataclass
class TrainData:
    """Everything the loop needs, as arrays and tensors (no files after loading).

    Attributes:
        categories: sorted category names (class order of the category head).
        classes: virtual-ID names (class order of the proxy loss).
        item_ids, item_category, item_class: per catalog listing.
        catalog_images: ``uint8[N, 3, S, S]`` studio shots.
        matte: the products cut out of them (alpha and boxes).
        query_ids, query_category, query_class: per *training* query sample (clicked queries
            only; a query with switch clicks has one sample per clicked class).
        query_images: ``uint8[Q, 3, S, S]``, one per sample (a query's photo repeats).
        query_negatives: per sample, rows of ``item_ids`` its query skipped above its click.
        query_weight: per sample, its loss weight (mean 1; see :func:`click_samples`).
        val_*: click-labelled queries kept out of the gradient (the run's own recall check).
        label_source: ``"clicks"`` or ``"oracle"``.
    """

    categories: list[str]
    classes: list[str]
    item_ids: np.ndarray
    item_category: np.ndarray
    item_class: np.ndarray
    catalog_images: torch.Tensor
    matte: Matte
    query_ids: np.ndarray
    query_category: np.ndarray
    query_class: np.ndarray
    query_images: torch.Tensor
    query_negatives: list[np.ndarray]
    val_query_ids: np.ndarray
    val_query_class: np.ndarray
    val_query_images: torch.Tensor
    label_source: str = "clicks"
    query_weight: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.query_weight is None:
            self.query_weight = np.ones(len(self.query_ids))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def summary(self) -> dict[str, int | str]:
        """Counts worth logging with a run."""
        sizes = np.bincount(self.item_class, minlength=self.num_classes)
        return {
            "listings": len(self.item_ids),
            "categories": len(self.categories),
            "classes": self.num_classes,
            "classes_multi_listing": int((sizes > 1).sum()),
            "train_queries": len(set(self.query_ids.tolist())),
            "train_query_samples": len(self.query_ids),
            "val_queries": len(self.val_query_ids),
            "queries_with_negatives": sum(1 for n in self.query_negatives if len(n)),
            "label_source": self.label_source,
        }


def build_train_data(
    drop: Path,
    labels: ClickLabels,
    size: int,
    *,
    split: SplitSettings,
    val_share: float,
    matte_threshold: float,
    seed: int,
    workers: int = 2,
    max_items: int | None = None,
    signals: SignalSettings | None = None,
) -> TrainData:
    """Load a drop's catalog and query photos with their click labels.

    Args:
        drop: a drop folder in the contract format (``catalog``, ``queries``, ``images/``).
        labels: identities from :func:`load_click_labels` (or :func:`oracle_labels`).
        size: side the photos are cached at (``model.input_size``).
        split: the held-out split (:mod:`vsearch.split`); those queries are never loaded.
        val_share: share of the remaining labelled queries kept for the run's own recall check.
        matte_threshold: see :func:`vsearch.training.augment.studio_matte`.
        seed: the validation split's seed.
        workers: decoding threads.
        max_items: keep only the first listings (tests, quick probes).
        signals: which mined signals to use (``train.signals``; default all).

    Raises:
        BadInput: the drop has fewer than two categories or no listings.
    """
    signals = SignalSettings() if signals is None else signals
    if labels.source == "clicks" and not signals.virtual_ids:
        labels = per_listing_labels(labels)
    catalog = read_table(drop, CATALOG)
    if max_items is not None:
        catalog = catalog.iloc[:max_items]
    if catalog.empty:
        raise BadInput(f"{drop}: the catalog is empty")
    categories = sorted(catalog["category"].astype(str).unique())
    if len(categories) < 2:
        raise BadInput(f"{drop}: need at least 2 categories to train, found {categories}")
    cat_index = {c: i for i, c in enumerate(categories)}
    item_ids = catalog["item_id"].astype(str).to_numpy()
    item_vids = [labels.item_vid.get(i, f"item:{i}") for i in item_ids]
    item_category = catalog["category"].astype(str).map(cat_index).to_numpy(np.int64)

    queries = read_table(drop, QUERIES)
    queries = queries[~is_held_out(queries, split)]
    queries = queries[queries["query_id"].isin(labels.query_vid.keys())]
    vid_category = (
        pd.DataFrame({"vid": item_vids, "cat": item_category})
        .groupby("vid")["cat"]
        .agg(lambda s: s.value_counts().index[0])
    )
    q_vids = queries["query_id"].map(labels.query_vid).astype(str)
    known = q_vids.isin(vid_category.index)  # a click on a listing outside this catalog
    queries, q_vids = queries[known.to_numpy()], q_vids[known]

    classes = sorted(set(item_vids))
    class_index = {v: i for i, v in enumerate(classes)}
    item_class = np.array([class_index[v] for v in item_vids], dtype=np.int64)
    q_class = q_vids.map(class_index).to_numpy(np.int64)

    is_val = validation_mask(queries["query_id"], val_share, seed)  # evaluation recomputes it
    item_row = {i: r for r, i in enumerate(item_ids)}
    q_ids = queries["query_id"].astype(str).to_numpy()
    train_rows = np.flatnonzero(~is_val)
    samples = click_samples(labels, q_ids[train_rows], signals)
    samples = samples[samples["vid"].isin(class_index.keys())]  # clicks outside this catalog
    if len(samples):
        samples = samples.assign(weight=samples["weight"] / samples["weight"].mean())
    s_rows = train_rows[samples["row"].to_numpy()]
    s_class = samples["vid"].map(class_index).to_numpy(np.int64)
    s_category = samples["vid"].map(vid_category).to_numpy(np.int64)
    negatives = [
        np.array(
            [item_row[i] for i in labels.negatives.get(q, []) if i in item_row]
            if signals.skip_above
            else [],
            dtype=np.int64,
        )
        for q in q_ids[s_rows]
    ]

    root = drop.resolve()
    cat_imgs = decode_images([root / p for p in catalog["image"]], size, workers)
    q_paths = [root / p for p in queries["image"]]
    q_imgs = decode_images(q_paths, size, workers)
    matte = studio_matte(cat_imgs, matte_threshold)
    val_t = torch.from_numpy(is_val)
    rows_t = torch.from_numpy(s_rows)
    data = TrainData(
        categories=categories,
        classes=classes,
        item_ids=item_ids,
        item_category=item_category,
        item_class=item_class,
        catalog_images=cat_imgs,
        matte=matte,
        query_ids=q_ids[s_rows],
        query_category=s_category,
        query_class=s_class,
        query_images=q_imgs[rows_t],
        query_negatives=negatives,
        query_weight=samples["weight"].to_numpy(float),
        val_query_ids=q_ids[is_val],
        val_query_class=q_class[is_val],
        val_query_images=q_imgs[val_t],
        label_source=labels.source,
    )
    log.info("training data: %s", data.summary())
    return data


@dataclass(frozen=True)
class Batch:
    """Row indices of one training batch and what each slot shows.

    Attributes:
        scene_items: listings rendered into synthetic real shots.
        studio_items: listings shown as their clean catalog photo.
        queries: training query rows (real photos, no box label).
        negative_pairs: ``int64[K, 2]``: (position in ``queries``, slot among the listings in
            ``scene_items`` then ``studio_items`` order) of each skip-above negative brought in.
    """

    scene_items: np.ndarray
    studio_items: np.ndarray
    queries: np.ndarray
    negative_pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))


class BatchSampler:
    """Builds batches that hold positives for the metric losses.

    Each query slot is paired with a listing of its clicked virtual ID (query ↔ catalog
    positive), and — for about ``negative_share`` of them — one of its skip-above negatives;
    the remaining slots take ``per_class`` listings of each of a few virtual IDs (two views of
    the same listing when it is the only one), visiting classes in a shuffled order per epoch.

    Args:
        data: the training data.
        batch_size: slots per batch.
        per_class: listings per virtual ID in the catalog part.
        query_share: share of slots that are query photos.
        studio_share: share of listing slots shown clean rather than as a scene.
        negative_share: share of query slots that bring a skip-above negative.
    """

    def __init__(
        self,
        data: TrainData,
        batch_size: int,
        per_class: int,
        query_share: float,
        studio_share: float,
        negative_share: float,
    ) -> None:
        self.data = data
        self.batch_size = batch_size
        self.per_class = per_class
        self.n_query = round(batch_size * query_share) if len(data.query_ids) else 0
        self.studio_share = studio_share
        self.negative_share = negative_share
        order = np.argsort(data.item_class, kind="stable")
        bounds = np.flatnonzero(np.diff(data.item_class[order])) + 1
        self.members = np.split(order, bounds)
        self.member_of = {int(data.item_class[m[0]]): m for m in self.members}
        self._queue: list[int] = []

    def _next_classes(self, k: int, rng: np.random.Generator) -> list[int]:
        out = []
        while len(out) < k:
            if not self._queue:
                self._queue = rng.permutation(len(self.members)).tolist()
            out.append(self._queue.pop())
        return out

    def sample(self, rng: np.random.Generator) -> Batch:
        """One batch of row indices (deterministic given ``rng``'s state)."""
        d = self.data
        items: list[int] = []
        neg_pairs: list[tuple[int, int]] = []
        queries = np.array([], dtype=np.int64)
        if self.n_query:
            queries = rng.choice(len(d.query_ids), size=self.n_query, replace=False)
            for j, q in enumerate(queries):
                items.append(int(rng.choice(self.member_of[int(d.query_class[q])])))
                negs = d.query_negatives[q]
                if len(negs) and rng.random() < self.negative_share:
                    neg_pairs.append((j, len(items)))
                    items.append(int(rng.choice(negs)))
        free = self.batch_size - len(queries) - len(items)
        for c in self._next_classes(max(1, -(-free // self.per_class)), rng):
            members = self.members[c]
            items.extend(
                rng.choice(members, size=self.per_class, replace=len(members) < self.per_class)
            )
        items_arr = np.array(items[: self.batch_size - len(queries)], dtype=np.int64)
        studio = rng.random(len(items_arr)) < self.studio_share
        # where each listing lands once scenes go first and studio shots after them
        slot = np.empty(len(items_arr), dtype=np.int64)
        slot[np.concatenate((np.flatnonzero(~studio), np.flatnonzero(studio)))] = np.arange(
            len(items_arr)
        )
        pairs = np.array(
            [(j, slot[i]) for j, i in neg_pairs if i < len(items_arr)], dtype=np.int64
        ).reshape(-1, 2)
        return Batch(items_arr[~studio], items_arr[studio], queries, pairs)
