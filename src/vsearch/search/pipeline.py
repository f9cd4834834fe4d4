"""The online search pipeline: photo → fused category → binary search → final ranking.

One object, used by the BentoML service, the evaluation and ``vsearch search``, so the
offline numbers are the service's numbers (docs/architecture.md#the-two-loops). Stages, each timed:

1. ``decode``: check and decode the upload (:mod:`vsearch.search.images`; bad input raises
   :class:`~vsearch.errors.BadInput` naming the problem, which the service maps to a 4xx);
2. ``model``: the encoder's candidate boxes (several objects in one photo, most confident
   first), then the category probabilities, embedding and binary code of the chosen one: the
   most confident by default, another candidate or a box the caller gives; with
   ``search.second_look``, also the box the detector finds inside that one (grown), described
   the same way (:mod:`vsearch.search.looks`);
3. ``fuse``: a small all-category search (``vote_k`` nearest listings) votes for the category,
   fused with the classifier (:mod:`vsearch.search.fusion`); a category the user chose wins;
4. ``hamming+rerank``: the engine searches the fused category's partition, widened to
   runner-up categories when the fused confidence is low (the release's routing threshold),
   and re-ranks the Hamming shortlist with float similarities; each look is searched, and a
   listing keeps the better of its similarities to the two;
5. ``rank``: quality/sales bonus and grouping of near-duplicate listings
   (:mod:`vsearch.search.ranking`); ``rank=False`` keeps the plain similarity order.

Filters (price range, sellers, in stock: :mod:`vsearch.search.filters`) become a mask of the
allowed listings that the engine searches *inside* stage 4, so ``k`` results come back when
``k`` matching listings exist. The vote of stage 3 stays unfiltered (it asks what the photo
shows, not what the shopper may buy); when the routed categories hold fewer matching listings
than the search fetches, the other categories holding matches are added, most probable first.

Batches are first-class: :meth:`SearchPipeline.search_encoded` works on ``n`` queries with
one engine call per stage. A response's ``timings_ms`` are its share of the batch's wall time
(batch time / n).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from vsearch.errors import BadInput
from vsearch.index.engine import Engine, FilterKnobs, SearchResult
from vsearch.index.release import FingerprintMismatch
from vsearch.model.export import ProposalKnobs
from vsearch.search.encoder import Encoded, Encoder, NetEncoder
from vsearch.search.filters import STOCK, BadFilter, SearchFilter
from vsearch.search.fusion import align_probs, category_space, fuse, neighbour_vote, top_categories
from vsearch.search.groups import PRODUCT_GROUP, with_product_groups
from vsearch.search.images import check_box, decode_bytes
from vsearch.search.looks import best_of_looks, take_columns
from vsearch.search.ranking import (
    blend_scores,
    collect_groups,
    cosine_matrix,
    group_heads,
    rank_order,
    same_group,
)
from vsearch.settings import SearchSettings, Settings

log = logging.getLogger(__name__)

# SearchResult's empty slot, field by field: (fill, dtype).
RESULT_EMPTY = (
    (None, object),
    (np.nan, np.float32),
    (-1, np.int32),
    (None, object),
    (-1, np.int64),
)
STAGES = ("decode", "model", "fuse", "hamming+rerank", "rank", "total")
CATALOG_FIELDS = ("item_id", "category", "seller_id", "title", "price", "image", "quality", "sales")
CATALOG_OPTIONAL_FIELDS = (STOCK,)  # kept when the catalog has them (filters read them)


@dataclass
class Hit:
    """One result: a listing (the group head) and the other listings of the same product."""

    item_id: str
    score: float
    similarity: float
    hamming: int
    category: str
    seller_id: str
    title: str
    price: float
    image: str  # path relative to the drop folder
    quality: float
    sales: int
    more_sellers: list[str] = field(default_factory=list)  # item ids grouped under this one


def _best_of(a: SearchResult, b: SearchResult, k: int) -> SearchResult:
    """Two looks' results as one list: each listing at its better score (:mod:`looks`)."""
    cols = best_of_looks(
        np.concatenate((a.internal_ids, b.internal_ids), axis=1),
        np.concatenate((a.scores, b.scores), axis=1),
        k,
    )
    return SearchResult(
        *(
            take_columns(np.concatenate((getattr(a, f), getattr(b, f)), axis=1), cols, fill)
            for f, (fill, _) in zip(SearchResult.__dataclass_fields__, RESULT_EMPTY, strict=True)
        )
    )


@dataclass
class SearchResponse:
    """What one query gets back (``to_dict`` is the service's JSON)."""

    category: str  # fused category (or the one the user chose)
    confidence: float  # fused probability of that category (1.0 when the user chose it)
    category_probs: dict[str, float]  # fused, top ``search.report_categories``
    model_category: str  # classifier argmax ("" without a classifier)
    vote_category: str  # neighbour-vote argmax ("" when no neighbour voted)
    searched_categories: list[str]  # partitions searched (widened when unsure)
    box: list[float]  # normalised xyxy of the region searched
    box_score: float  # its objectness (1.0 for a box the caller gave)
    results: list[Hit]  # final ranking, grouped by product, len <= k
    timings_ms: dict[str, float]  # per stage (STAGES), this query's share of its batch
    category_forced: bool = False  # the user chose the category
    filters: dict[str, Any] = field(default_factory=dict)  # the filter applied (empty: none)
    # Objects found in the photo, most confident first: {"box": xyxy, "score": objectness}.
    candidates: list[dict[str, Any]] = field(default_factory=list)
    candidate: int | None = None  # the candidate searched (None: the caller's box, or none)
    # The second look's box (search.second_look), searched beside ``box``; None: no second look.
    second_box: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(self)


def _json_safe(value: Any) -> Any:
    """Plain JSON values of a response: dataclasses as dicts (a fresh copy, like
    ``dataclasses.asdict``, in a third of its time: it was 0.19 ms of every search), NaN/inf
    (unknown price or quality of a listing live-upserted without metadata) → None."""
    if hasattr(value, "__dataclass_fields__"):
        value = vars(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _Catalog:
    """Listing metadata by item id, as column arrays (one vectorised lookup per batch)."""

    def __init__(self, catalog: pd.DataFrame) -> None:
        missing = [c for c in CATALOG_FIELDS if c not in catalog.columns]
        if missing:
            raise ValueError(f"catalog table lacks columns {missing} (see contracts.CATALOG)")
        df = catalog.drop_duplicates("item_id", keep="last")
        self.index = pd.Index(df["item_id"].astype(str).to_numpy(object))
        self.seller_id = df["seller_id"].astype(str).to_numpy(object)
        self.title = df["title"].astype(str).to_numpy(object)
        self.image = df["image"].astype(str).to_numpy(object)
        self.price = df["price"].to_numpy(np.float64, na_value=np.nan)
        self.quality = df["quality"].to_numpy(np.float64, na_value=np.nan)
        self.sales = df["sales"].to_numpy(np.float64, na_value=0.0)
        # Filter columns, prepared once: sellers as integer codes, stock (NaN = unknown).
        codes, names = pd.factorize(df["seller_id"].astype(str), sort=False)
        self.seller_codes = codes.astype(np.int64)
        self.seller_names = pd.Index(names)
        self.stock = (
            pd.to_numeric(df[STOCK], errors="coerce").to_numpy(np.float64, na_value=np.nan)
            if STOCK in df.columns
            else None
        )
        self._internal: tuple[Engine, int, np.ndarray] | None = None
        # Same product, other sellers: the mined virtual ID when known (see groups.py).
        group = df[PRODUCT_GROUP] if PRODUCT_GROUP in df.columns else df["item_id"]
        self.group = group.fillna(df["item_id"]).astype(str).to_numpy(object)
        self.frame = df

    def rows(self, item_ids: np.ndarray) -> np.ndarray:
        """Row of each id (``-1`` for ``None`` and unknown ids), same shape."""
        flat = np.asarray(item_ids, dtype=object).ravel()
        out = np.full(flat.shape, -1, dtype=np.int64)
        known = np.fromiter((x is not None for x in flat), bool, flat.size)
        if known.any():
            out[known] = self.index.get_indexer(flat[known])
        return out.reshape(np.shape(item_ids))

    def column(self, name: str, rows: np.ndarray, missing: float) -> np.ndarray:
        values = getattr(self, name)
        return np.where(rows >= 0, values[np.maximum(rows, 0)], missing)

    def unknown_sellers(self, sellers: Sequence[str]) -> list[str]:
        return [s for s in sellers if s not in self.seller_names]

    def allowed(self, f: SearchFilter, engine: Engine) -> np.ndarray:
        """``bool[engine.n_internal]``: the engine's live items whose catalog row passes ``f``.

        The catalog-row -> internal-id map is computed once per engine state (its
        ``generation`` moves with every upsert/delete) and reused by every filtered search.
        """
        seller_codes = None
        if f.sellers:
            seller_codes = self.seller_names.get_indexer(list(f.sellers))
            seller_codes = seller_codes[seller_codes >= 0]
        rows = f.mask_arrays(self.price, self.seller_codes, seller_codes, self.stock)
        cached = self._internal
        if cached is None or cached[0] is not engine or cached[1] != engine.generation:
            generation = engine.generation
            cached = (engine, generation, engine.lookup(self.index.to_numpy(object)))
            self._internal = cached
        return engine.mask_of(cached[2][rows])


@dataclass
class _Ranked:
    """Candidates in final order plus the groups to return, per query."""

    item_ids: np.ndarray
    scores: np.ndarray
    similarity: np.ndarray
    hamming: np.ndarray
    categories: np.ndarray
    rows: np.ndarray
    groups: list[list[tuple[int, list[int]]]]


class SearchPipeline:
    """Encoder + index engine + catalog metadata, searched as one (see the module docstring).

    Args:
        encoder: photos → :class:`~vsearch.search.encoder.Encoded`.
        engine: the opened index release; its model fingerprint must be the encoder's.
        catalog: the drop's catalog table (``contracts.CATALOG`` columns, any order).
        settings: all settings (``search`` is used; the engine carries its own index knobs).

    Raises:
        FingerprintMismatch: the release was built by another model than ``encoder``.
    """

    def __init__(
        self, encoder: Encoder, engine: Engine, catalog: pd.DataFrame, settings: Settings
    ) -> None:
        built_by = engine.manifest.model.fingerprint
        if str(encoder.fingerprint) != str(built_by):
            raise FingerprintMismatch(
                f"index release {engine.version} was built by model {str(built_by)[:12]}, "
                f"the encoder is {str(encoder.fingerprint)[:12]}: rebuild the index with this "
                "model or serve the model the release was built with"
            )
        self.encoder = encoder
        self.engine = engine
        self.settings = settings
        self._catalog = _Catalog(catalog)
        self._fusion_weight: float | None = None
        self._vote_temperature: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        settings: Settings,
        model_dir: Path,
        indexes_dir: Path,
        drop_dir: Path,
        device: str | torch.device | None = None,
        writable: bool = True,
        mining_dir: Path | None = None,
    ) -> SearchPipeline:
        """Load a model folder, open ``indexes_dir``'s CURRENT release (its fingerprint must
        match the model's) and read the drop's catalog table.

        Args:
            settings: all settings.
            model_dir: a model folder (:func:`vsearch.model.export.save_model`).
            indexes_dir: where releases live (``CURRENT`` names the served one).
            drop_dir: the drop whose catalog the release indexes (titles, sellers, prices).
            device: default ``project.device``.
            writable: open the release's change log for admin writes.
            mining_dir: the mining outputs whose virtual IDs group listings of one product.
        """
        from vsearch.contracts import CATALOG, ContractError, read_table

        if not Path(model_dir).is_dir():
            raise BadInput(f"model folder {model_dir} does not exist")
        try:
            encoder = NetEncoder.load(
                Path(model_dir),
                device or settings.project.device,
                batch_size=settings.search.encode_batch,
            )
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        try:
            catalog = with_product_groups(read_table(Path(drop_dir), CATALOG), mining_dir)
        except ContractError as exc:
            raise BadInput(f"catalog of {drop_dir}: {exc}") from None
        engine = Engine.open_current(
            indexes_dir, settings.index, expected_model=encoder.fingerprint, writable=writable
        )
        try:
            return cls(encoder, engine, catalog, settings)
        except BaseException:
            engine.close()
            raise

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> SearchPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def search_settings(self) -> SearchSettings:
        return self.settings.search

    @property
    def fusion_weight(self) -> float:
        """The classifier's share in the fused category: the release's calibrated weight when
        it has one (:func:`vsearch.search.fusion.calibrate_weight`), else ``search``'s."""
        if self._fusion_weight is not None:
            return self._fusion_weight
        calibrated = (self.engine.manifest.calibration or {}).get("fusion_weight")
        return float(calibrated) if calibrated is not None else self.search_settings.fusion_weight

    @fusion_weight.setter
    def fusion_weight(self, value: float | None) -> None:
        self._fusion_weight = value

    @property
    def vote_temperature(self) -> float | None:
        """The neighbour vote's temperature: the release's calibrated one when it has one, else
        ``search``'s (``None``: weights are the similarities themselves)."""
        if self._vote_temperature is not None:
            return self._vote_temperature
        calibrated = (self.engine.manifest.calibration or {}).get("vote_temperature")
        configured = self.search_settings.vote_temperature
        return float(calibrated) if calibrated is not None else configured

    @vote_temperature.setter
    def vote_temperature(self, value: float | None) -> None:
        self._vote_temperature = value

    def category_evidence(self, enc: Encoded) -> tuple[list[str], np.ndarray | None, np.ndarray]:
        """Category names, classifier probabilities (``None`` without a classifier) and the
        neighbour vote of each query: what the fusion weighs (used to calibrate it)."""
        names, cls_probs, vote, _, _, _ = self._fuse(self.engine, enc, [None] * len(enc))
        return names, cls_probs, vote

    @property
    def catalog(self) -> pd.DataFrame:
        return self._catalog.frame

    @property
    def input_size(self) -> int:
        """Side uploads are decoded at (the encoder's, else ``model.input_size``)."""
        return int(getattr(self.encoder, "input_size", None) or self.settings.model.input_size)

    def update_catalog(self, rows: pd.DataFrame) -> None:
        """Add or replace listings' metadata (the admin upsert path); swapped atomically."""
        merged = pd.concat([self._catalog.frame, rows], ignore_index=True)
        self._catalog = _Catalog(merged)

    # -- checks (each raises BadInput naming the problem) ------------------------------------

    def check_k(self, k: int) -> int:
        max_k = self.search_settings.max_k
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= max_k:
            raise BadInput(f"k must be an integer in [1, {max_k}], got {k!r}")
        return int(k)

    def check_category(self, category: str | None) -> str | None:
        """A user-chosen category must be one the index has a partition for."""
        if category is None:
            return None
        known = self.engine.categories
        if not isinstance(category, str) or category not in known:
            raise BadInput(f"unknown category {category!r}; known categories: {sorted(known)}")
        return category

    def _forced(self, categories: Sequence[Any] | None, n: int) -> list[str | list[str] | None]:
        """Per query: a chosen category, an explicit list of partitions, or ``None``."""
        if categories is None:
            return [None] * n
        if isinstance(categories, str):
            raise BadInput("categories must be one entry (a name or None) per query, not a str")
        cats = list(categories)
        if len(cats) != n:
            raise BadInput(f"categories has {len(cats)} entries for {n} queries")
        out: list[str | list[str] | None] = []
        for c in cats:
            if isinstance(c, list | tuple):
                if not c:
                    raise BadInput("an explicit list of categories must not be empty")
                out.append([self.check_category(x) for x in c])
            else:
                out.append(self.check_category(c))
        return out

    @property
    def proposal_knobs(self) -> ProposalKnobs | None:
        """Candidate boxes asked of the encoder (``None``: it proposes none, or
        ``search.proposals`` is 0)."""
        s = self.search_settings
        if s.proposals < 1 or not getattr(self.encoder, "proposes", False):
            return None
        return ProposalKnobs(s.proposals, s.proposal_iou, s.proposal_min_score)

    def check_candidate(self, candidate: Any) -> int | None:
        """A chosen candidate index: an integer in ``[0, search.proposals)`` (``None`` passes).

        Whether the photo has that many candidates is known after the model ran
        (:class:`~vsearch.errors.NoSuchCandidate`)."""
        if candidate is None:
            return None
        knobs = self.proposal_knobs
        if knobs is None:
            raise BadInput(
                f"candidate {candidate!r} chosen but this service proposes no candidate boxes "
                "(search.proposals is 0, or the model has no box head); give a box instead"
            )
        if (
            isinstance(candidate, bool)
            or not isinstance(candidate, int | np.integer)
            or not 0 <= candidate < knobs.k
        ):
            raise BadInput(
                f"candidate must be an integer in [0, {knobs.k - 1}] (an index into the "
                f"response's candidates), got {candidate!r}"
            )
        return int(candidate)

    def _candidates(
        self, candidates: Sequence[int | None] | None, boxes: np.ndarray | None, n: int
    ) -> np.ndarray | None:
        """Checked per-query candidate indices (``int64[n]``, 0 where none chosen) or ``None``."""
        if candidates is None:
            return None
        cands = list(candidates)
        if len(cands) != n:
            raise BadInput(f"candidates has {len(cands)} entries for {n} queries")
        out = np.zeros(n, np.int64)
        for i, c in enumerate(cands):
            where = f"image {i}: " if n > 1 else ""
            try:
                checked = self.check_candidate(c)
            except BadInput as exc:
                raise BadInput(f"{where}{exc}") from None
            if checked is None:
                continue
            if boxes is not None and not np.isnan(boxes[i]).all():
                raise BadInput(f"{where}give a box or a candidate, not both")
            out[i] = checked
        return out if cands and any(c is not None for c in cands) else None

    def encode(
        self,
        images: torch.Tensor,
        boxes: np.ndarray | None = None,
        candidates: Sequence[int | None] | None = None,
    ) -> Encoded:
        """The model stage: candidates (when the encoder proposes them) and the chosen region's
        description; ``boxes`` rows (all-NaN: none given) win over candidates.

        Raises:
            BadInput: a bad candidate index, or a box and a candidate for one photo;
                :class:`~vsearch.errors.NoSuchCandidate` (a ``BadInput``) when a photo
                has fewer candidates than the index chosen.
        """
        n = int(images.shape[0])
        choice = self._candidates(candidates, boxes, n)
        knobs = self.proposal_knobs
        if not getattr(self.encoder, "proposes", False):
            return self.encoder.encode(images, boxes)
        look = self.search_settings.second_look
        if knobs is None:
            return self.encoder.encode(images, boxes, second_look=look)
        return self.encoder.encode(
            images, boxes, candidates=choice, proposals=knobs, second_look=look
        )

    def check_filter(self, f: SearchFilter | None) -> SearchFilter | None:
        """A filter whose sellers the served catalog knows (``None``/inactive -> ``None``)."""
        if f is None or not f.active:
            return None
        if not isinstance(f, SearchFilter):
            raise BadFilter(f"filters must be SearchFilter objects, got {type(f).__name__}")
        unknown = self._catalog.unknown_sellers(f.sellers)
        if unknown:
            raise BadFilter(
                f"unknown seller(s) {unknown[:10]}: no listing of theirs in the served catalog"
            )
        return f

    def _filters(self, filters: Sequence[SearchFilter | None] | None, n: int) -> list:
        """One checked filter (or ``None``) per query."""
        if filters is None:
            return [None] * n
        if isinstance(filters, SearchFilter):
            raise BadInput("filters must be one entry (a SearchFilter or None) per query")
        fs = list(filters)
        if len(fs) != n:
            raise BadInput(f"filters has {len(fs)} entries for {n} queries")
        return [self.check_filter(f) for f in fs]

    def decode(self, data: bytes) -> np.ndarray:
        """Check and decode an upload into ``uint8[3, S, S]`` (the training decode)."""
        s = self.search_settings
        return decode_bytes(
            data, self.input_size, s.max_image_bytes, s.max_image_pixels, s.image_formats
        )

    # -- search ------------------------------------------------------------------------------

    def search_bytes(
        self,
        data: bytes,
        k: int,
        box: Sequence[float] | None = None,
        category: str | Sequence[str] | None = None,
        rank: bool = True,
        filters: SearchFilter | None = None,
        candidate: int | None = None,
    ) -> SearchResponse:
        """One uploaded photo (optional user box or candidate index, category or categories,
        filter) → response.

        Raises:
            BadInput: not an image, truncated, empty, too many bytes or pixels, box outside
                [0, 1] or empty, unknown category or seller, k out of range, candidate out of
                range (or given with a box).
        """
        return self.search_bytes_batch([data], k, [box], [category], rank, [filters], [candidate])[
            0
        ]

    def search_bytes_batch(
        self,
        items: Sequence[bytes],
        k: int,
        boxes: Sequence[Sequence[float] | None] | None = None,
        categories: Sequence[str | Sequence[str] | None] | None = None,
        rank: bool = True,
        filters: Sequence[SearchFilter | None] | None = None,
        candidates: Sequence[int | None] | None = None,
    ) -> list[SearchResponse]:
        """Several uploads at once; a bad item names its index (``candidates``: per photo, the
        candidate box to search, ``None`` for the most confident)."""
        t0 = time.perf_counter()
        n = len(items)
        k = self.check_k(k)
        forced = self._forced(categories, n)
        self._filters(filters, n)
        box_list = [None] * n if boxes is None else list(boxes)
        if len(box_list) != n:
            raise BadInput(f"boxes has {len(box_list)} entries for {n} images")
        pixels, given = [], np.full((n, 4), np.nan, dtype=np.float32)
        for i, (data, box) in enumerate(zip(items, box_list, strict=True)):
            where = f"image {i}: " if n > 1 else ""
            try:
                b = check_box(box)
                pixels.append(self.decode(data))
            except BadInput as exc:  # same type (TooLarge stays TooLarge), the item named
                raise type(exc)(f"{where}{exc}") from None
            if b is not None:
                given[i] = b
        images = (
            torch.from_numpy(np.stack(pixels))
            if pixels
            else torch.empty((0, 3, self.input_size, self.input_size), dtype=torch.uint8)
        )
        decode_ms = (time.perf_counter() - t0) * 1e3
        use_boxes = None if np.isnan(given).all() else given
        out = self.search_images(images, k, use_boxes, forced, rank, filters, candidates)
        for r in out:
            r.timings_ms["decode"] = decode_ms / n
            r.timings_ms["total"] += decode_ms / n
        return out

    def search_images(
        self,
        images: torch.Tensor,
        k: int,
        boxes: np.ndarray | None = None,
        categories: Sequence[str | Sequence[str] | None] | None = None,
        rank: bool = True,
        filters: Sequence[SearchFilter | None] | None = None,
        candidates: Sequence[int | None] | None = None,
    ) -> list[SearchResponse]:
        """Decoded photos ``uint8[n, 3, S, S]`` → responses (boxes: normalised xyxy to use
        instead of detecting, an all-NaN row detects; candidates: per photo the candidate
        index to search, ``None`` the most confident)."""
        k = self.check_k(k)
        n = int(images.shape[0])
        self._forced(categories, n)
        self._filters(filters, n)
        t0 = time.perf_counter()
        enc = self.encode(images, boxes, candidates)
        model_ms = (time.perf_counter() - t0) * 1e3
        out = self.search_encoded(enc, k, categories, rank, filters)
        for r in out:
            r.timings_ms["model"] = model_ms / n
            r.timings_ms["total"] += model_ms / n
        return out

    def search_encoded(
        self,
        enc: Encoded,
        k: int,
        categories: Sequence[str | Sequence[str] | None] | None = None,
        rank: bool = True,
        filters: Sequence[SearchFilter | None] | None = None,
    ) -> list[SearchResponse]:
        """Encoded queries → responses (stages 3-5; see the module docstring).

        Args:
            enc: ``n`` encoded photos.
            k: results per query (groups when ``rank``).
            categories: per query, a category the user chose (searched alone, reported as
                the category), ``None`` (fused category and routing), or a list of categories
                to search instead of routing (e.g. all of them, to measure the binary search
                without routing misses; the reported category stays the fused one).
            rank: final ranking and grouping; ``False`` gives the plain similarity order
                (``score == similarity``, no grouping), which measures what the binary search
                retains.
            filters: per query, a :class:`~vsearch.search.filters.SearchFilter` applied inside
                the search, or ``None``.
        """
        k = self.check_k(k)
        n = len(enc)
        forced = self._forced(categories, n)
        checked = self._filters(filters, n)
        if n == 0:
            return []
        engine = self.engine  # one release for the whole batch, even if swapped meanwhile
        t0 = time.perf_counter()
        names, cls_probs, vote, support, fused, routes = self._fuse(engine, enc, forced)
        fetch = k * self.search_settings.candidate_factor if rank else k
        masks = self._allowed(engine, checked, forced, routes, fused, names, fetch)
        t1 = time.perf_counter()
        res = self._search(engine, enc, routes, fetch, masks)
        if enc.second is not None:
            res = _best_of(res, self._search(engine, enc.second, routes, fetch, masks), fetch)
        t2 = time.perf_counter()
        ranked = self._rank(engine, res, k, rank)
        t3 = time.perf_counter()
        timings = {
            "decode": 0.0,
            "model": 0.0,
            "fuse": (t1 - t0) * 1e3 / n,
            "hamming+rerank": (t2 - t1) * 1e3 / n,
            "rank": (t3 - t2) * 1e3 / n,
        }
        top = top_categories(fused, names, self.search_settings.report_categories)
        out = []
        for i in range(n):
            best = int(np.argmax(fused[i]))
            category, confidence = names[best], float(fused[i, best])
            chosen = isinstance(forced[i], str)
            if chosen:
                category, confidence = forced[i], 1.0
            t = dict(timings)
            out.append(
                SearchResponse(
                    category=category,
                    confidence=confidence,
                    category_probs=top[i],
                    model_category=(
                        names[int(np.argmax(cls_probs[i]))] if cls_probs is not None else ""
                    ),
                    vote_category=names[int(np.argmax(vote[i]))] if support[i] > 0 else "",
                    searched_categories=list(routes[i]),
                    box=[float(x) for x in enc.boxes[i]],
                    second_box=(
                        [float(x) for x in enc.second.boxes[i]] if enc.second is not None else None
                    ),
                    box_score=float(enc.box_scores[i]),
                    results=self._hits(ranked, i),
                    timings_ms=t,
                    category_forced=chosen,
                    filters=checked[i].describe() if checked[i] is not None else {},
                    candidates=enc.candidates_of(i),
                    candidate=(
                        int(enc.chosen[i])
                        if enc.chosen is not None and enc.chosen[i] >= 0
                        else None
                    ),
                )
            )
        elapsed = (time.perf_counter() - t0) * 1e3 / n
        engine_ms = timings["fuse"] + timings["hamming+rerank"] + timings["rank"]
        for r in out:  # "total" also counts building the responses
            r.timings_ms["rank"] += elapsed - engine_ms
            r.timings_ms["total"] = elapsed
        return out

    # -- stages ------------------------------------------------------------------------------

    def _fuse(
        self, engine: Engine, enc: Encoded, forced: list[str | list[str] | None]
    ) -> tuple[list[str], np.ndarray | None, np.ndarray, np.ndarray, np.ndarray, list[list[str]]]:
        """Fused category probabilities and the partitions each query searches.

        With a second look, the classifier's probabilities are the mean of the two looks' and
        the vote's neighbours are the nearest listings by either look (best similarity), so a
        look that shows the product small (a loose box) does not route the search alone.
        """
        s = self.search_settings
        n = len(enc)
        index_cats = engine.categories
        names = category_space(self.encoder.categories, index_cats)
        cls_probs = None
        if self.encoder.has_classifier:
            probs = np.mean([look.category_probs for look in enc.looks], axis=0)
            cls_probs = align_probs(probs, self.encoder.categories, names)
        if index_cats and len(engine):
            # The vote looks at every partition equally (extra_depth 1): it asks "what are the
            # nearest listings", not "what is near in the category we already believe".
            found = [
                engine.search(
                    look.codes,
                    look.embeddings,
                    [index_cats] * n,
                    k=s.vote_k,
                    rerank_depth=s.vote_depth,
                    extra_depth=1.0,
                )
                for look in enc.looks
            ]
            res = found[0] if len(found) == 1 else _best_of(*found, s.vote_k)
            vote, support = neighbour_vote(res.categories, res.scores, names, self.vote_temperature)
        else:
            vote = np.full((n, len(names)), 1.0 / max(len(names), 1), np.float32)
            support = np.zeros(n, np.float32)
        fused = fuse(cls_probs, vote, self.fusion_weight if cls_probs is not None else 0.0)
        if index_cats:
            col = {c: j for j, c in enumerate(names)}
            routes = engine.route(fused[:, [col[c] for c in index_cats]], index_cats)
        else:
            routes = [[] for _ in range(n)]
        for i, f in enumerate(forced):
            if f is not None:
                routes[i] = [f] if isinstance(f, str) else list(dict.fromkeys(f))
        return names, cls_probs, vote, support, fused, routes

    def _allowed(
        self,
        engine: Engine,
        filters: list[SearchFilter | None],
        forced: list[str | list[str] | None],
        routes: list[list[str]],
        fused: np.ndarray,
        names: list[str],
        fetch: int,
    ) -> list[np.ndarray | None]:
        """The allowed-listings mask of each query (shared by equal filters), widening the
        routes of filtered queries whose routed categories hold fewer than ``fetch`` matches.

        Why widen: routing guesses where the photo's product is; a filter says what the
        shopper may buy. When the guessed categories cannot fill the page with matching
        listings, the categories that hold matches are searched too, most probable first.
        A chosen category is never widened.
        """
        masks: list[np.ndarray | None] = [None] * len(filters)
        by_filter: dict[SearchFilter, tuple[np.ndarray, dict[str, int]]] = {}
        col = {c: j for j, c in enumerate(names)}
        for i, f in enumerate(filters):
            if f is None:
                continue
            if f not in by_filter:
                mask = self._catalog.allowed(f, engine)
                by_filter[f] = (mask, engine.allowed_counts(mask))
            masks[i], counts = by_filter[f]
            if forced[i] is not None or not routes[i]:
                continue
            have = sum(counts.get(c, 0) for c in routes[i])
            rest = [c for c in engine.categories if c not in routes[i] and counts.get(c, 0)]
            rest.sort(key=lambda c: -float(fused[i, col[c]]) if c in col else 0.0)
            for c in rest:
                if have >= fetch:
                    break
                routes[i].append(c)
                have += counts[c]
        return masks

    def _search(
        self,
        engine: Engine,
        enc: Encoded,
        routes: list[list[str]],
        k: int,
        masks: list[np.ndarray | None] | None = None,
    ) -> SearchResult:
        """Hamming shortlist + float re-rank in each query's partitions (empty rows if none);
        queries with a mask are searched over its allowed items only, one engine call per
        distinct mask."""
        n = len(enc)
        masks = masks or [None] * n
        out = SearchResult(*(np.full((n, k), fill, dtype=dtype) for fill, dtype in RESULT_EMPTY))
        groups: dict[int, tuple[np.ndarray | None, list[int]]] = {}
        for i, r in enumerate(routes):
            if r:
                groups.setdefault(id(masks[i]), (masks[i], []))[1].append(i)
        knobs = FilterKnobs.from_settings(self.settings.index)
        for mask, todo in groups.values():
            rows = np.asarray(todo)
            res = engine.search(
                enc.codes[rows],
                enc.embeddings[rows],
                [routes[i] for i in todo],
                k=k,
                allowed=mask,
                filter_knobs=knobs,
            )
            for f in SearchResult.__dataclass_fields__:
                getattr(out, f)[rows] = getattr(res, f)
        return out

    def _rank(self, engine: Engine, res: SearchResult, k: int, rank: bool) -> _Ranked:
        """Final order and groups (``rank``), or the engine's similarity order, top ``k``."""
        s = self.search_settings
        cat = self._catalog
        valid = res.internal_ids >= 0
        rows = cat.rows(res.item_ids)
        sim = np.where(valid, res.scores, np.nan).astype(np.float32)
        if not rank:
            groups = [[(j, []) for j in np.flatnonzero(v)[:k].tolist()] for v in valid]
            return _Ranked(res.item_ids, sim, sim, res.hamming, res.categories, rows, groups)
        quality = cat.column("quality", rows, np.nan)
        sales = cat.column("sales", rows, 0.0)
        scores = blend_scores(
            sim, quality, sales, s.weight_quality, s.weight_sales, s.sales_saturation
        )
        scores[~valid] = np.nan
        order = rank_order(scores)

        def take(a: np.ndarray) -> np.ndarray:
            return np.take_along_axis(a, order, axis=1)

        valid, internal = take(valid), take(res.internal_ids)
        vectors = np.zeros((*valid.shape, engine.dim), dtype=np.float32)
        if valid.any():
            vectors[valid] = engine.vectors(internal[valid])
        # Listings link when the clicks say they are one product (same virtual ID) or when
        # they are near-exact duplicates; embedding similarity alone merges look-alikes.
        group = np.where(valid, cat.column("group", take(rows), ""), "")
        links = np.where(same_group(group, valid), np.float32(1.0), cosine_matrix(vectors))
        heads = group_heads(links, valid, s.group_similarity)
        return _Ranked(
            take(res.item_ids),
            take(scores),
            take(sim),
            take(res.hamming),
            take(res.categories),
            take(rows),
            collect_groups(heads, k),
        )

    def _hits(self, r: _Ranked, i: int) -> list[Hit]:
        cat = self._catalog
        hits = []
        for j, members in r.groups[i]:
            row = int(r.rows[i, j])
            known = row >= 0
            hits.append(
                Hit(
                    item_id=str(r.item_ids[i, j]),
                    score=float(r.scores[i, j]),
                    similarity=float(r.similarity[i, j]),
                    hamming=int(r.hamming[i, j]),
                    category=str(r.categories[i, j]),
                    seller_id=str(cat.seller_id[row]) if known else "",
                    title=str(cat.title[row]) if known else "",
                    price=float(cat.price[row]) if known else math.nan,
                    image=str(cat.image[row]) if known else "",
                    quality=float(cat.quality[row]) if known else math.nan,
                    sales=int(cat.sales[row]) if known else 0,
                    more_sellers=[str(r.item_ids[i, m]) for m in members],
                )
            )
        return hits
