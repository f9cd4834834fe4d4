"""The joint loss: category + box + metric (over virtual IDs and mined pairs) + quantisation.

Why each term:

* **category** — cross-entropy on the crop: the search runs inside the predicted category.
* **box** — on synthetic scenes and studio shots (whose boxes augmentation knows): a focal
  loss on a Gaussian centre heat-map (``torchvision.ops.sigmoid_focal_loss``) says *where*, and
  L1 + generalised IoU (``torchvision.ops.generalized_box_iou_loss``) on the cells near the
  centre say *how big*; GIoU keeps a gradient when boxes do not overlap yet.
* **proxy** — ``NormalizedSoftmaxLoss`` over virtual-ID classes: one learnable proxy per class,
  which learned fastest in the probe (docs/measurements.md#the-embedding-probe) and sees every class
  each epoch.
* **pair** — ``MultiSimilarityLoss`` on the pairs a ``MultiSimilarityMiner`` picks from the batch:
  query ↔ clicked listing positives are in the batch by design, and each skip-above negative the
  batch brought is added to the mined pairs whether the miner picked it or not (the shopper saw
  it and passed it over: a hard negative the miner's margin may not see yet).
* **per-sample weights** — the proxy and pair terms are weighted means over the slots (each
  slot's loss times its weight, divided by the weights' sum): query samples weigh what click
  mining gives them (inverse propensity x click type), listings 1; all ones is the plain mean.
* **hash_pair** + **quantization** — the same pair loss on ``tanh`` of the hash logits, plus
  ``(|tanh h| - 1)²``, so that taking the sign (the binary code) loses little.

All metric terms are pytorch-metric-learning modules; nothing is hand-written but the
quantisation penalty and the heat-map target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)
from pytorch_metric_learning import losses, miners, reducers
from torch import nn
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from vsearch.settings import LossSettings

MIN_SIGMA_CELLS = 0.5  # the heat-map Gaussian is at least half a cell wide
FOCAL_GAMMA = 2.0


@dataclass
class LossInputs:
    """What the joint loss compares.

    Attributes:
        embedding: ``[N, d]`` L2-normalised crop embeddings (all slots).
        hash_logits: ``[N, bits]``.
        category_logits: ``[N, C]``.
        classes: ``[N]`` virtual-ID class per slot.
        categories: ``[N]`` category index per slot.
        heat: ``[M, h, w]`` centre logits of the slots with a box label.
        cell_boxes: ``[M, h, w, 4]`` per-cell boxes of those slots.
        boxes: ``[M, 4]`` their true boxes (normalised xyxy).
        weights: ``[N]`` per-slot weight of the proxy and pair terms (``None``: all 1).
        hard_negatives: ``[K, 2]`` (anchor slot, negative slot) pairs always in the pair loss.
    """

    embedding: torch.Tensor
    hash_logits: torch.Tensor
    category_logits: torch.Tensor
    classes: torch.Tensor
    categories: torch.Tensor
    heat: torch.Tensor
    cell_boxes: torch.Tensor
    boxes: torch.Tensor
    weights: torch.Tensor | None = None
    hard_negatives: torch.Tensor | None = None


def weighted_mean(
    loss_dict: dict, weights: torch.Tensor | None, like: torch.Tensor
) -> torch.Tensor:
    """Reduce a pytorch-metric-learning loss dict (``DoNothingReducer`` output) by weights.

    Per-element terms become ``sum(w * loss) / sum(w)`` (the plain mean when all weights are
    1, which is what the losses' default ``MeanReducer`` computes); terms the loss already
    reduced (no pairs in the batch) are added as they are. ``like`` gives the zero's device,
    dtype and graph.
    """
    total = like.sum() * 0
    for term in loss_dict.values():
        value = term["losses"]
        if term["reduction_type"] != "element" or not torch.is_tensor(value) or value.ndim == 0:
            total = total + value
            continue
        if weights is None:
            total = total + value.mean()
        else:
            w = weights[term["indices"]].to(value.dtype)
            total = total + (w * value).sum() / w.sum().clamp(min=torch.finfo(value.dtype).tiny)
    return total


def with_hard_negatives(
    pairs: tuple[torch.Tensor, ...], negatives: torch.Tensor | None, classes: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Mined ``(a1, p, a2, n)`` pairs plus ``negatives`` (both directions), where the two slots'
    classes differ (a same-class "negative" would contradict the labels)."""
    if negatives is None or len(negatives) == 0:
        return pairs
    a, n = negatives[:, 0], negatives[:, 1]
    keep = classes[a] != classes[n]
    a, n = a[keep], n[keep]
    a1, p, a2, n2 = pairs
    return a1, p, torch.cat((a2, a, n)), torch.cat((n2, n, a))


def heatmap_targets(boxes: torch.Tensor, h: int, w: int, sigma: float) -> torch.Tensor:
    """Gaussian centre targets ``[M, h, w]`` in [0, 1], peak 1 at the cell holding the centre."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    sx = (sigma * (boxes[:, 2] - boxes[:, 0])).clamp(min=MIN_SIGMA_CELLS / w)
    sy = (sigma * (boxes[:, 3] - boxes[:, 1])).clamp(min=MIN_SIGMA_CELLS / h)
    xs = (torch.arange(w, dtype=boxes.dtype, device=boxes.device) + 0.5) / w
    ys = (torch.arange(h, dtype=boxes.dtype, device=boxes.device) + 0.5) / h
    gx = torch.exp(-0.5 * ((xs.view(1, -1) - cx.view(-1, 1)) / sx.view(-1, 1)) ** 2)
    gy = torch.exp(-0.5 * ((ys.view(1, -1) - cy.view(-1, 1)) / sy.view(-1, 1)) ** 2)
    t = gy.unsqueeze(2) * gx.unsqueeze(1)
    peak = t.flatten(1).argmax(dim=1)
    t.view(t.shape[0], -1)[torch.arange(t.shape[0]), peak] = 1.0
    return t


class JointLoss(nn.Module):
    """Weighted sum of the terms above; returns the total and each term (for logging).

    Args:
        settings: the ``train.loss`` section.
        num_classes: virtual-ID classes (proxies).
        embedding_dim: embedding size.
    """

    def __init__(self, settings: LossSettings, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        self.s = settings
        # per-element losses come back unreduced: weighted_mean applies the sample weights
        self.proxy = losses.NormalizedSoftmaxLoss(
            num_classes,
            embedding_dim,
            temperature=settings.proxy_temperature,
            reducer=reducers.DoNothingReducer(),
        )
        self.pair = losses.MultiSimilarityLoss(
            alpha=settings.ms_alpha,
            beta=settings.ms_beta,
            base=settings.ms_base,
            reducer=reducers.DoNothingReducer(),
        )
        self.hash_pair = losses.MultiSimilarityLoss(
            alpha=settings.ms_alpha,
            beta=settings.ms_beta,
            base=settings.ms_base,
            reducer=reducers.DoNothingReducer(),
        )
        self.miner = miners.MultiSimilarityMiner(epsilon=settings.miner_epsilon)

    def box_terms(
        self, heat: torch.Tensor, cell_boxes: torch.Tensor, boxes: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Heat-map focal loss and centre-weighted L1 + GIoU of the per-cell boxes."""
        if heat.shape[0] == 0:
            zero = heat.sum() * 0
            return {"heatmap": zero, "box_l1": zero, "box_giou": zero}
        m, h, w = heat.shape
        target = heatmap_targets(boxes, h, w, self.s.heatmap_sigma)
        focal = sigmoid_focal_loss(heat, target, alpha=-1, gamma=FOCAL_GAMMA, reduction="sum")
        weight = target / target.sum(dim=(1, 2), keepdim=True)
        flat = cell_boxes.reshape(-1, 4)
        gt = boxes.view(m, 1, 1, 4).expand(m, h, w, 4).reshape(-1, 4)
        l1 = (flat - gt).abs().sum(dim=1).view(m, h, w)
        giou = generalized_box_iou_loss(flat, gt).view(m, h, w)
        return {
            "heatmap": focal / m,
            "box_l1": (weight * l1).sum() / m,
            "box_giou": (weight * giou).sum() / m,
        }

    def forward(self, x: LossInputs) -> dict[str, torch.Tensor]:
        """All terms (unweighted) and ``total`` (weighted sum)."""
        s = self.s
        terms = self.box_terms(x.heat, x.cell_boxes, x.boxes)
        terms["category"] = F.cross_entropy(x.category_logits, x.categories)
        w = x.weights
        terms["proxy"] = weighted_mean(self.proxy(x.embedding, x.classes), w, x.embedding)
        pairs = with_hard_negatives(self.miner(x.embedding, x.classes), x.hard_negatives, x.classes)
        terms["pair"] = weighted_mean(self.pair(x.embedding, x.classes, pairs), w, x.embedding)
        relaxed = torch.tanh(x.hash_logits)
        hashed = self.hash_pair(F.normalize(relaxed, dim=1), x.classes, pairs)
        terms["hash_pair"] = weighted_mean(hashed, w, x.embedding)
        terms["quantization"] = ((relaxed.abs() - 1) ** 2).mean()
        weights = {
            "heatmap": s.heatmap,
            "box_l1": s.box_l1,
            "box_giou": s.box_giou,
            "category": s.category,
            "proxy": s.proxy,
            "pair": s.pair,
            "hash_pair": s.hash_pair,
            "quantization": s.quantization,
        }
        terms["total"] = sum(weights[k] * terms[k] for k in weights)
        return terms
