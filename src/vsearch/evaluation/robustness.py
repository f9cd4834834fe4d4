"""The robustness report (truth family): how recall holds up when the photo or the box changes.

Two questions the headline recall cannot answer:

* **loose boxes**: recall@K with the true box given to the encoder, then with that box grown
  by ``box_growth`` of its width/height on each side (clipped to the photo). A model whose
  recall collapses under a 25%-loose box depends on a pixel-tight detector; a shopper's crop
  (or any detector) is never tight.
* **re-shot listings**: the catalog's own studio photos composited onto real photographs no
  training used (:data:`vsearch.assets.photos.QUERY_PHOTOS`, random crops), the product's
  longer side ``reshot_scales`` of the frame side, once with the white studio background kept
  (a pasted rectangle, as a seller's photo re-shared on a page) and once cut out with the
  studio matte (:func:`vsearch.training.augment.studio_matte`). Each photo is searched with
  the detected box; a hit shows the listing's product. Both modes share the background and
  the position, so their difference is the studio background alone.

Deterministic (``project.seed``) and bounded: ``robustness.photos`` held-out queries and as
many listings, so ``photos * (1 + len(box_growth) + 2 * len(reshot_scales))`` encodes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from vsearch.evaluation.metrics import recall_at_k, relevance_matrix

if TYPE_CHECKING:
    from vsearch.evaluation.evalset import EvalSet
    from vsearch.search.pipeline import SearchPipeline, SearchResponse
    from vsearch.settings import Settings

log = logging.getLogger(__name__)

STUDIO = "studio"  # the studio photo pasted whole, white background and all
CUTOUT = "cutout"  # the product alone, cut out with the studio matte


def grow_boxes(boxes: np.ndarray, growth: float) -> np.ndarray:
    """Normalised ``xyxy`` boxes grown by ``growth`` of their width/height on each side, clipped
    to the photo ``[0, 1]``."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if growth < 0:
        raise ValueError(f"box growth must be >= 0, got {growth}")
    pad = np.concatenate([b[:, 2:] - b[:, :2]] * 2, axis=1) * growth
    return np.clip(b + pad * np.array([-1, -1, 1, 1], dtype=np.float32), 0.0, 1.0)


def composite(
    studio: np.ndarray,
    alpha: np.ndarray,
    box: np.ndarray,
    background: Image.Image,
    scale: float,
    where: tuple[float, float],
    mode: str,
) -> np.ndarray:
    """One re-shot photo ``uint8[3, S, S]``: a studio shot pasted onto ``background``.

    Args:
        studio: ``uint8[3, s, s]`` the listing's studio photo.
        alpha: ``uint8[s, s]`` its product matte (255 = product).
        box: ``[4]`` px ``xyxy`` of the product in the studio photo.
        background: the frame (RGB, ``S x S``).
        scale: the product's longer side as a share of the frame side.
        where: ``(u, v)`` in ``[0, 1]``: where the product's top-left corner goes, as a share
            of the room left for it in the frame.
        mode: :data:`STUDIO` pastes the whole shot (white background kept), :data:`CUTOUT`
            the product through its matte.
    """
    if mode not in (STUDIO, CUTOUT):
        raise ValueError(f"re-shot mode must be {STUDIO!r} or {CUTOUT!r}, got {mode!r}")
    frame = background.convert("RGB").copy()
    side = frame.size[0]
    x0, y0, x1, y1 = (float(v) for v in box)
    longest = max(x1 - x0, y1 - y0, 1.0)
    factor = scale * side / longest
    size = max(1, round(studio.shape[-1] * factor))
    shot = Image.fromarray(np.ascontiguousarray(studio.transpose(1, 2, 0))).resize(
        (size, size), Image.BILINEAR
    )
    pw, ph = (x1 - x0) * factor, (y1 - y0) * factor
    px = where[0] * max(side - pw, 0.0)
    py = where[1] * max(side - ph, 0.0)
    offset = (round(px - x0 * factor), round(py - y0 * factor))
    if mode == STUDIO:
        frame.paste(shot, offset)
    else:
        mask = Image.fromarray(np.ascontiguousarray(alpha)).resize((size, size), Image.BILINEAR)
        frame.paste(shot, offset, mask)
    return np.asarray(frame, dtype=np.uint8).transpose(2, 0, 1).copy()


def _recall(responses: Sequence[SearchResponse], sku: np.ndarray, ev: EvalSet, k: int) -> float:
    """Recall@``k`` of grouped results showing each photo's product."""
    groups = [[[h.item_id, *h.more_sellers] for h in r.results] for r in responses]
    return recall_at_k(relevance_matrix(groups, sku, ev.product_of, k), k)


def _search(
    pipeline: SearchPipeline, images: torch.Tensor, boxes: Any, k: int
) -> list[SearchResponse]:
    """The service's search of ``images`` (``boxes``: given boxes, ``None``: detected)."""
    return pipeline.search_encoded(pipeline.encode(images, boxes), k=k, rank=True)


def robustness_metrics(
    pipeline: SearchPipeline,
    ev: EvalSet,
    query_images: torch.Tensor,
    catalog_images: torch.Tensor,
    settings: Settings,
) -> dict[str, float | int | None]:
    """The robustness metrics (see the module docstring); empty without truth or photos.

    Keys (K = ``evaluation.headline_k``): ``robust_true_box_recall@K``,
    ``robust_box_grow<g>_recall@K`` and ``robust_box_grow<g>_minus_true_box`` per growth,
    ``robust_reshot_<mode>_<scale>_recall@K`` per mode and scale, ``robust_reshot_<mode>_recall@K``
    over all scales, and the photo counts ``robust_box_queries`` / ``robust_reshot_listings``.
    """
    from vsearch.assets.photos import random_background
    from vsearch.training.augment import studio_matte

    r = settings.evaluation.robustness
    k = settings.evaluation.headline_k
    if not ev.has_truth or r.photos == 0:
        return {}
    rng = np.random.default_rng(settings.project.seed)
    out: dict[str, float | int | None] = {}
    started = time.perf_counter()

    # (a) the true box, then looser ones, on the same held-out queries.
    found = np.flatnonzero(ev.findable)
    rows = np.sort(rng.choice(found, size=min(r.photos, len(found)), replace=False))
    if len(rows):
        images, sku = query_images[rows], ev.query_sku[rows]
        tight = _recall(_search(pipeline, images, ev.true_boxes[rows], k), sku, ev, k)
        out[f"robust_true_box_recall@{k}"] = tight
        for g in r.box_growth:
            boxes = grow_boxes(ev.true_boxes[rows], g)
            loose = _recall(_search(pipeline, images, boxes, k), sku, ev, k)
            out[f"robust_box_grow{g:g}_recall@{k}"] = loose
            out[f"robust_box_grow{g:g}_minus_true_box"] = loose - tight
    out["robust_box_queries"] = len(rows)

    # (b) listings re-shot on unseen backgrounds, searched with the detected box.
    items = ev.catalog["item_id"].astype(str).to_numpy()
    known = np.flatnonzero([i in ev.product_of for i in items])
    picks = np.sort(rng.choice(known, size=min(r.photos, len(known)), replace=False))
    out["robust_reshot_listings"] = len(picks)
    if not len(picks):
        return out
    studio = catalog_images[picks]
    matte = studio_matte(studio, settings.train.augment.matte_threshold)
    alpha, mboxes = matte.alpha[:, 0].numpy(), matte.boxes.numpy()
    sku = np.array([ev.product_of[items[i]] for i in picks], dtype=str)
    side = int(studio.shape[-1])
    shots: dict[str, list[np.ndarray]] = {STUDIO: [], CUTOUT: []}
    for scale in r.reshot_scales:
        for j in range(len(picks)):
            background = random_background(rng, side)
            where = (float(rng.random()), float(rng.random()))
            for mode in (STUDIO, CUTOUT):
                shots[mode].append(
                    composite(
                        studio[j].numpy(), alpha[j], mboxes[j], background, scale, where, mode
                    )
                )
    n = len(picks)
    for mode, photos in shots.items():
        hits = []
        for s, scale in enumerate(r.reshot_scales):
            batch = torch.from_numpy(np.stack(photos[s * n : (s + 1) * n]))
            res = _search(pipeline, batch, None, k)
            groups = [[[h.item_id, *h.more_sellers] for h in x.results] for x in res]
            rel = relevance_matrix(groups, sku, ev.product_of, k)
            hits.append(rel.any(axis=1))
            out[f"robust_reshot_{mode}_{scale:g}_recall@{k}"] = recall_at_k(rel, k)
        out[f"robust_reshot_{mode}_recall@{k}"] = float(np.concatenate(hits).mean())
    log.info(
        "robustness: true box %s, re-shot studio %s, cut out %s (recall@%d; %.1f s)",
        out.get(f"robust_true_box_recall@{k}"),
        out.get(f"robust_reshot_{STUDIO}_recall@{k}"),
        out.get(f"robust_reshot_{CUTOUT}_recall@{k}"),
        k,
        time.perf_counter() - started,
    )
    return out
