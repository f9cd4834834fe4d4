"""Joint loss: heat-map targets, every term finite, perfect boxes cost (almost) nothing."""

from __future__ import annotations

import pytest
import torch

from vsearch.settings import LossSettings
from vsearch.training.losses import JointLoss, LossInputs, heatmap_targets

pytestmark = pytest.mark.unit


def test_heatmap_target_peaks_at_the_centre_cell() -> None:
    t = heatmap_targets(torch.tensor([[0.5, 0.0, 1.0, 0.5]]), 4, 4, sigma=0.1)
    assert t.shape == (1, 4, 4) and t.max() == 1.0 and t.min() >= 0
    assert t[0].flatten().argmax().item() == 1 * 4 + 2 or t[0, 0, 2] == 1.0
    assert t[0, 3, 0] < 1e-3  # far corner


def inputs(n: int = 8, m: int = 4, good_boxes: bool = False) -> LossInputs:
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(n, 16, generator=g), dim=1)
    boxes = torch.tensor([[0.2, 0.3, 0.7, 0.8]]).repeat(m, 1)
    cells = (
        boxes.view(m, 1, 1, 4).expand(m, 4, 4, 4).clone() if good_boxes else torch.rand(m, 4, 4, 4)
    )
    return LossInputs(
        embedding=emb.requires_grad_(),
        hash_logits=torch.randn(n, 32, generator=g),
        category_logits=torch.randn(n, 3, generator=g),
        classes=torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])[:n],
        categories=torch.tensor([0, 0, 1, 1, 2, 2, 0, 0])[:n],
        heat=torch.randn(m, 4, 4, generator=g),
        cell_boxes=cells,
        boxes=boxes,
    )


def test_every_term_is_finite_and_total_is_the_weighted_sum() -> None:
    s = LossSettings()
    loss = JointLoss(s, num_classes=4, embedding_dim=16)
    terms = loss(inputs())
    names = (
        "heatmap",
        "box_l1",
        "box_giou",
        "category",
        "proxy",
        "pair",
        "hash_pair",
        "quantization",
    )
    assert all(torch.isfinite(terms[k]) for k in names)
    want = sum(getattr(s, k) * terms[k] for k in names)
    assert torch.allclose(terms["total"], want)
    terms["total"].backward()
    assert loss.proxy.W.grad is not None  # the proxies learn


def test_perfect_boxes_cost_nothing_and_no_boxes_are_allowed() -> None:
    loss = JointLoss(LossSettings(), num_classes=4, embedding_dim=16)
    terms = loss(inputs(good_boxes=True))
    assert terms["box_l1"] < 1e-6 and terms["box_giou"] < 1e-5
    empty = loss.box_terms(torch.zeros(0, 4, 4), torch.zeros(0, 4, 4, 4), torch.zeros(0, 4))
    assert all(v == 0 for v in empty.values())
