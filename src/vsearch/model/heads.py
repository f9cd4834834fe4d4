"""Heads on the shared backbone: box, embedding, hash and category.

Why these shapes:

* **Box** — a centre heat-map plus, in every cell, the distances from the cell centre to the four
  box edges (FCOS/CenterNet style). docs/measurements.md records a centre heat-map localiser
  at IoU 0.64 on real-photo queries; regressing from the cell that holds the product centre is
  far easier for a small net than regressing four numbers from a pooled vector. Edges are
  parameterised as positive distances from the cell centre, so ``x0 < x1`` and ``y0 < y1`` hold
  by construction and clamping to ``[0, 1]`` cannot flip them.
* **Embedding** — average + max pooling (max keeps small distinguishing details such as a logo),
  a linear projection and L2 normalisation, so cosine similarity is a dot product.
* **Hash** — a linear layer on the embedding; its sign is the binary code. Being a projection of
  the embedding, Hamming order follows cosine order, which the float re-rank then refines.
* **Category** — a linear classifier on the pooled crop features (dropout against over-fitting
  to the few listings per category).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)
from torch import nn
from torchvision.ops import batched_nms

BOX_CHANNELS = 5  # 1 heat-map logit + 4 edge distances per cell
MIN_EDGE = 1e-3  # smallest distance from a cell centre to a box edge (share of the side)


class BoxHead(nn.Module):
    """Feature map → per-cell centre logits and per-cell boxes (normalised xyxy)."""

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, BOX_CHANNELS, kernel_size=1),
        )

    def forward(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``heat`` ``[B, h, w]`` (logits) and ``cell_boxes`` ``[B, h, w, 4]`` in [0, 1]."""
        out = self.conv(fmap)
        _, _, h, w = out.shape
        heat = out[:, 0]
        # l, t, r, b as shares of the side, never below MIN_EDGE: a box cannot collapse
        dist = (MIN_EDGE + (1 - MIN_EDGE) * torch.sigmoid(out[:, 1:])).permute(0, 2, 3, 1)
        ys = (torch.arange(h, device=out.device, dtype=out.dtype) + 0.5) / h
        xs = (torch.arange(w, device=out.device, dtype=out.dtype) + 0.5) / w
        cy = ys.view(1, h, 1).expand(out.shape[0], h, w)
        cx = xs.view(1, 1, w).expand(out.shape[0], h, w)
        boxes = torch.stack(
            (
                (cx - dist[..., 0]).clamp(min=0.0),
                (cy - dist[..., 1]).clamp(min=0.0),
                (cx + dist[..., 2]).clamp(max=1.0),
                (cy + dist[..., 3]).clamp(max=1.0),
            ),
            dim=-1,
        )
        return heat, boxes


def decode_boxes(heat: torch.Tensor, cell_boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The box of the most confident cell and that confidence.

    Args:
        heat: ``[B, h, w]`` centre logits.
        cell_boxes: ``[B, h, w, 4]`` per-cell boxes.

    Returns:
        ``boxes`` ``[B, 4]`` normalised xyxy and ``scores`` ``[B]`` in (0, 1).
    """
    flat = heat.flatten(1)
    best = flat.argmax(dim=1)
    boxes = cell_boxes.flatten(1, 2).gather(1, best.view(-1, 1, 1).expand(-1, 1, 4)).squeeze(1)
    scores = torch.sigmoid(flat.gather(1, best.view(-1, 1)).squeeze(1))
    return boxes, scores


def local_max(heat: torch.Tensor) -> torch.Tensor:
    """The maximum of each cell's 3x3 neighbourhood, ``[B, h, w]`` (borders see fewer cells).

    Why not ``F.max_pool2d``: on a small grid its CPU kernel went multi-threaded and took
    10-20 ms at batch 32 on a busy 2-core machine; these elementwise maxima take ~0.03 ms.
    """
    p = F.pad(heat, (1, 1, 1, 1), value=float("-inf"))
    rows = torch.maximum(torch.maximum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])
    return torch.maximum(torch.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def decode_proposals(
    heat: torch.Tensor,
    cell_boxes: torch.Tensor,
    k: int,
    iou_threshold: float,
    min_score: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``k`` distinct boxes per photo, most confident first (several products in a photo).

    Two steps, as CenterNet decodes its heat map: only cells that are the maximum of their
    3x3 neighbourhood (peaks, :func:`local_max`) are candidates, then box NMS
    (``torchvision.ops.batched_nms``) drops peaks whose boxes overlap a more confident one.
    Why peaks first: the cells around one product's centre all score high and predict nearly
    the same box, so taking the top ``k`` cells would give ``k`` copies of one product; and NMS
    over every cell costs O(cells²) per batch (~10 ms at batch 32 on 2 cores) where peaks are
    a handful per photo. Slot 0 is always
    :func:`decode_boxes`'s box (what ``detect`` returns), even below ``min_score``, so the
    default search is unchanged by asking for candidates.

    Args:
        heat: ``[B, h, w]`` centre logits.
        cell_boxes: ``[B, h, w, 4]`` per-cell boxes (normalised xyxy).
        k: candidates wanted per photo (>= 1).
        iou_threshold: a box overlapping a more confident kept one above this IoU is dropped.
        min_score: boxes below this confidence (sigmoid of the logit) are dropped (not slot 0).

    Returns:
        ``boxes`` ``[B, k, 4]`` and ``scores`` ``[B, k]`` in [0, 1], sorted by score; slots
        past a photo's last surviving candidate are NaN in both.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    b = heat.shape[0]
    scores = torch.sigmoid(heat.flatten(1))  # [B, N]
    boxes = cell_boxes.flatten(1, 2)  # [B, N, 4]
    n = scores.shape[1]
    best_boxes, best_scores = decode_boxes(heat, cell_boxes)
    best = heat.flatten(1).argmax(dim=1)
    keep = (heat >= local_max(heat)).flatten(1) & (scores >= min_score)
    keep[torch.arange(b, device=heat.device), best] = True
    flat = keep.flatten().nonzero().squeeze(1)  # candidate cells over the whole batch
    image = torch.div(flat, n, rounding_mode="floor")
    kept = flat[
        batched_nms(boxes.reshape(-1, 4)[flat], scores.flatten()[flat], image, iou_threshold)
    ]
    # batched_nms orders by score over the batch; regroup per photo keeping that order.
    img = torch.div(kept, n, rounding_mode="floor")
    order = torch.sort(img, stable=True).indices
    kept, img = kept[order], img[order]
    counts = torch.bincount(img, minlength=b)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(kept.numel(), device=heat.device) - starts[img]
    take = rank < k
    out_boxes = torch.full((b, k, 4), float("nan"), dtype=boxes.dtype, device=boxes.device)
    out_scores = torch.full((b, k), float("nan"), dtype=scores.dtype, device=scores.device)
    out_boxes[img[take], rank[take]] = boxes.reshape(-1, 4)[kept[take]]
    out_scores[img[take], rank[take]] = scores.flatten()[kept[take]]
    # NMS keeps each photo's top-scoring cell first; on an exact tie it may be another cell
    # than argmax's, so slot 0 is set to decode_boxes's choice explicitly.
    out_boxes[:, 0] = best_boxes
    out_scores[:, 0] = best_scores
    return out_boxes, out_scores


def pool(fmap: torch.Tensor) -> torch.Tensor:
    """Average and max pooling concatenated: ``[B, C, h, w]`` → ``[B, 2C]``."""
    return torch.cat((fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3))), dim=1)


class EmbeddingHead(nn.Module):
    """Pooled features → L2-normalised embedding (cosine similarity = dot product)."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features)
        self.proj = nn.Linear(in_features, dim)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.norm(pooled)), dim=1)


class HashHead(nn.Module):
    """Embedding → hash logits; ``sign`` gives the code, ``tanh`` its relaxation in training."""

    def __init__(self, dim: int, bits: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, bits)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.proj(embedding)


class CategoryHead(nn.Module):
    """Pooled features → category logits."""

    def __init__(self, in_features: int, num_categories: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_categories)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(pooled))
