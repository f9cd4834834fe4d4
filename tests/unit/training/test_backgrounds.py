"""Procedural backgrounds: varied, in range, seeded; clutter mosaics are made of the products."""

from __future__ import annotations

import pytest
import torch

from vsearch.settings import AugmentSettings
from vsearch.training.augment import SceneSynthesizer
from vsearch.training.backgrounds import (
    DRAWERS,
    KINDS,
    clutter_mosaic,
    procedural_backgrounds,
)

pytestmark = pytest.mark.unit
SIZE = 48


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_draws_varied_images_in_range(kind: str) -> None:
    out = DRAWERS[kind](8, SIZE, torch.Generator().manual_seed(1))
    assert out.shape == (8, 3, SIZE, SIZE)
    assert out.min() >= 0 and out.max() <= 1
    # not flat, and no two scenes alike
    assert (out.flatten(1).std(dim=1) > 0.01).all()
    flat = out.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(8) * 1e9).min() > 1.0


def test_same_seed_same_backgrounds_and_all_kinds_appear() -> None:
    a = procedural_backgrounds(40, SIZE, torch.Generator().manual_seed(5))
    b = procedural_backgrounds(40, SIZE, torch.Generator().manual_seed(5))
    c = procedural_backgrounds(40, SIZE, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_clutter_mosaic_is_cut_from_the_given_products() -> None:
    green = torch.zeros(3, 3, 64, 64)
    green[:, 1] = 1.0
    out = clutter_mosaic(green, 5, SIZE, torch.Generator().manual_seed(0))
    assert out.shape == (5, 3, SIZE, SIZE)
    assert torch.allclose(out[:, 1], torch.ones(5, SIZE, SIZE))
    assert out[:, [0, 2]].abs().max() < 1e-6


def _backgrounds(**over: object) -> torch.Tensor:
    black = (torch.zeros(2, 3, 60, 60), torch.tensor([[60.0, 60.0]] * 2))
    syn = SceneSynthesizer(AugmentSettings(**over), SIZE, black)
    red = torch.zeros(4, 3, 64, 64)
    red[:, 0] = 1.0
    return syn.backgrounds(64, torch.Generator().manual_seed(2), red)


def test_procedural_share_decides_photo_or_drawn_backgrounds() -> None:
    assert _backgrounds(procedural_share=0.0).abs().max() == 0  # every one a (black) photo
    drawn = _backgrounds(procedural_share=1.0, clutter_share=0.0)
    assert (drawn.flatten(1).amax(dim=1) > 0).all()  # none is a photo
    mixed = _backgrounds(procedural_share=0.5, clutter_share=0.0).flatten(1).amax(dim=1)
    assert 10 < int((mixed == 0).sum()) < 54
    clutter = _backgrounds(procedural_share=1.0, clutter_share=1.0)
    red = (clutter[:, 0] > 0.99) & (clutter[:, 1:].amax(dim=1) < 1e-6)
    assert red.all()  # mosaics of the (red) products of the batch
