r"""How much of the detector's loss is the wrong object, and how much an imprecise box.

    python -m bench.candidates_bench --drop data/raw/<drop> --truth data/truth/<drop> \
        --mining runs/mining --model runs/train

Searches every held-out query of a demo world (ground truth needed) once per candidate box the
model proposes (``search.proposals``), each as the box a user would pick, through the same
pipeline the service runs (second look included). Figures (one JSON object; K is
``evaluation.headline_k``):

* ``recall_first@K`` — identical recall@K with the first (most confident) candidate: the default;
* ``recall_any_candidate@K`` — a hit with *some* candidate: what a perfect chooser among the
  candidates would reach (the ceiling of a candidate re-scorer);
* ``recall_best_iou_candidate@K`` — with the candidate nearest the true box;
* ``iou_first`` / ``iou_best_candidate`` — mean IoU of those boxes with the true box;
* ``first_iou_lt_0.3`` / ``best_iou_lt_0.3`` — share of queries whose first / best candidate
  misses the product; ``wrong_object`` — first candidate misses (IoU < 0.3) while another
  covers it (IoU >= 0.5);
* ``candidates_mean`` — candidates per photo.

The gap between ``recall_any_candidate@K`` and ``recall_first@K`` bounds what choosing the object
better can give; the gap to the true-box recall (``vsearch evaluate``) beyond it is the boxes'
precision. Nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_iou

from vsearch.settings import load_settings

MISS_IOU = 0.3  # below: the box is on something else
COVER_IOU = 0.5  # at or above: the box is on the product


def measure(
    params: Path, drop: Path, truth: Path, mining: Path | None, model: Path
) -> dict[str, Any]:
    from vsearch.evaluation.measure import _groups, _ImageCache
    from vsearch.evaluation.metrics import relevance_matrix
    from vsearch.evaluation.stage import prepare_eval_set
    from vsearch.evaluation.systems import load_model_encoder
    from vsearch.search.build import build_pipeline_from_embeddings, encode_catalog

    settings = load_settings(params)
    torch.set_num_threads(settings.project.threads)
    ev = prepare_eval_set(settings, drop, truth, mining)
    if not ev.has_truth:
        raise SystemExit(f"{truth}: no ground truth; the bench needs a demo world's truth")
    encoder = load_model_encoder(settings, model)
    images = _ImageCache(drop, ev, settings.evaluation.decode_workers)
    size = settings.model.input_size
    queries = images.get("queries", size)
    emb = encode_catalog(encoder, ev.catalog, images.get("catalog", size))
    k = settings.evaluation.headline_k
    true_boxes = torch.from_numpy(ev.true_boxes.astype(np.float64))
    with (
        tempfile.TemporaryDirectory(prefix="vsearch-cands-") as tmp,
        build_pipeline_from_embeddings(encoder, ev.catalog, emb, settings, Path(tmp)) as pipeline,
    ):
        candidates = pipeline.encode(queries).candidates
        if candidates is None:
            raise SystemExit("the model proposes no candidates (search.proposals: 0?)")
        hits, ious, present = [], [], []
        for j in range(candidates.shape[1]):
            boxes = candidates[:, j].astype(np.float32)  # all-NaN rows: no such candidate
            missing = np.isnan(boxes).any(axis=1)
            found = pipeline.search_encoded(pipeline.encode(queries, boxes), k=k, rank=True)
            rel = relevance_matrix(_groups(found, grouped=True), ev.query_sku, ev.product_of, k)
            hits.append(rel.any(axis=1) & ~missing)
            present.append(~missing)
            iou = box_iou(torch.from_numpy(np.nan_to_num(boxes).astype(np.float64)), true_boxes)
            ious.append(np.where(missing, 0.0, iou.diagonal().numpy()))
    rows = ev.findable
    hit, iou = np.stack(hits, axis=1)[rows], np.stack(ious, axis=1)[rows]
    n = len(hit)
    best = iou.argmax(axis=1)
    return {
        "model": str(model),
        "queries": n,
        "candidates_mean": float(np.stack(present, axis=1)[rows].sum(axis=1).mean()),
        f"recall_first@{k}": float(hit[:, 0].mean()),
        f"recall_any_candidate@{k}": float(hit.any(axis=1).mean()),
        f"recall_best_iou_candidate@{k}": float(hit[np.arange(n), best].mean()),
        "iou_first": float(iou[:, 0].mean()),
        "iou_best_candidate": float(iou.max(axis=1).mean()),
        f"first_iou_lt_{MISS_IOU}": float((iou[:, 0] < MISS_IOU).mean()),
        f"best_iou_lt_{MISS_IOU}": float((iou.max(axis=1) < MISS_IOU).mean()),
        "wrong_object": float(((iou[:, 0] < MISS_IOU) & (iou.max(axis=1) >= COVER_IOU)).mean()),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--drop", type=Path, required=True)
    ap.add_argument("--truth", type=Path, required=True)
    ap.add_argument("--mining", type=Path, default=None, help="virtual IDs (as served)")
    ap.add_argument("--model", type=Path, required=True, help="model or training run folder")
    a = ap.parse_args(argv)
    print(json.dumps(measure(a.params, a.drop, a.truth, a.mining, a.model), indent=1))


if __name__ == "__main__":
    main()
