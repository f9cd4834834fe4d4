"""Augmentation: mattes find the product, pasted boxes contain it, same seed → same scenes."""

from __future__ import annotations

import pytest
import torch

from vsearch.settings import AugmentSettings
from vsearch.training.augment import (
    SceneSynthesizer,
    gaussian_blur,
    jitter_boxes,
    jpeg,
    loosen_boxes,
    mask_boxes,
    studio_matte,
    training_crop_boxes,
)

pytestmark = pytest.mark.unit
SIZE = 64
PURE = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1)  # a colour real photos almost never have


def studio_shots(n: int) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
    """Light backdrop with a pure-green rectangle at a known place."""
    imgs = torch.full((n, 3, SIZE, SIZE), 0.93)
    boxes = []
    for i in range(n):
        x0, y0 = 8 + i % 5, 12 + i % 7
        x1, y1 = x0 + 30 + i % 9, y0 + 24 + i % 11
        imgs[i, :, y0:y1, x0:x1] = PURE
        boxes.append((x0, y0, x1, y1))
    return imgs, boxes


def bank() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    photos = torch.rand(3, 3, 80, 100, generator=g) * 0.6  # never pure green
    return photos, torch.tensor([[100.0, 80.0]] * 3)


def plain_settings(**over: object) -> AugmentSettings:
    """No photometric change, so product pixels keep their colour and can be found."""
    base = {
        "distractor_prob": 0.0,
        "brightness": (1.0, 1.0),
        "contrast": (1.0, 1.0),
        "gamma": (1.0, 1.0),
        "color_cast": 0.0,
        "light_gradient": 0.0,
        "blur_prob": 0.0,
        "noise_std": (0.0, 0.0),
        "jpeg_prob": 0.0,
        "shadow": (0.0, 0.0),
        "procedural_share": 0.0,  # drawn backgrounds may hold pure green
    }
    return AugmentSettings(**{**base, **over})


def test_matte_finds_the_product_box() -> None:
    imgs, boxes = studio_shots(6)
    m = studio_matte((imgs * 255).round().to(torch.uint8), threshold=0.1)
    assert m.alpha.shape == (6, 1, SIZE, SIZE) and m.alpha.dtype == torch.uint8
    for got, want in zip(m.boxes.tolist(), boxes, strict=True):
        assert got == pytest.approx(list(want), abs=1.5)


def test_matte_falls_back_to_the_whole_image_when_nothing_stands_out() -> None:
    blank = torch.full((1, 3, SIZE, SIZE), 240, dtype=torch.uint8)
    m = studio_matte(blank, threshold=0.1)
    assert m.boxes[0].tolist() == [0, 0, SIZE, SIZE]


def test_pasted_boxes_contain_the_product() -> None:
    imgs, _ = studio_shots(8)
    m = studio_matte((imgs * 255).round().to(torch.uint8), threshold=0.1)
    syn = SceneSynthesizer(plain_settings(), SIZE, bank())
    scenes = syn.scenes(imgs, m.alpha.float() / 255, m.boxes, torch.Generator().manual_seed(0))
    assert scenes.images.shape == (8, 3, SIZE, SIZE)
    b = scenes.boxes
    assert ((b >= 0) & (b <= 1)).all() and (b[:, 0] < b[:, 2]).all() and (b[:, 1] < b[:, 3]).all()
    green = (scenes.images[:, 1] > 0.9) & (scenes.images[:, 0] < 0.1) & (scenes.images[:, 2] < 0.1)
    found = mask_boxes(green) / SIZE
    for i in range(8):
        assert green[i].sum() > 20  # the product is visible
        x0, y0, x1, y1 = (b[i] * SIZE).tolist()
        ys, xs = torch.nonzero(green[i], as_tuple=True)
        assert xs.min() >= x0 - 1 and xs.max() < x1 + 1  # every product pixel inside the box
        assert ys.min() >= y0 - 1 and ys.max() < y1 + 1
        assert (found[i] - b[i]).abs().max() < 3 / SIZE  # and the box is tight


def test_same_seed_same_scenes_and_distractors_beside() -> None:
    imgs, _ = studio_shots(6)
    m = studio_matte((imgs * 255).round().to(torch.uint8), threshold=0.1)
    syn = SceneSynthesizer(AugmentSettings(distractor_prob=1.0), SIZE, bank())
    a = syn.scenes(imgs, m.alpha.float() / 255, m.boxes, torch.Generator().manual_seed(5))
    b = syn.scenes(imgs, m.alpha.float() / 255, m.boxes, torch.Generator().manual_seed(5))
    c = syn.scenes(imgs, m.alpha.float() / 255, m.boxes, torch.Generator().manual_seed(6))
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.images, c.images)


def test_studio_samples_flip_their_boxes() -> None:
    imgs, boxes = studio_shots(4)
    syn = SceneSynthesizer(plain_settings(flip_prob=1.0), SIZE, bank())
    px = torch.tensor(boxes, dtype=torch.float32)
    out = syn.studio(imgs, px, torch.Generator().manual_seed(0))
    want = torch.stack((SIZE - px[:, 2], px[:, 1], SIZE - px[:, 0], px[:, 3]), dim=1) / SIZE
    assert torch.allclose(out.boxes, want)


def test_jitter_keeps_boxes_valid() -> None:
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.4, 0.4, 0.45, 0.5], [0.1, 0.2, 0.6, 0.9]])
    out = jitter_boxes(boxes.repeat(50, 1), 0.3, torch.Generator().manual_seed(0))
    assert ((out >= 0) & (out <= 1)).all()
    assert (out[:, 0] < out[:, 2]).all() and (out[:, 1] < out[:, 3]).all()


def test_blur_and_jpeg_keep_shapes() -> None:
    x = torch.rand(4, 3, 32, 32)
    blurred = gaussian_blur(x, torch.tensor([0.0, 0.5, 1.0, 2.0]), max_sigma=2.0)
    assert blurred.shape == x.shape
    assert torch.allclose(blurred[0], x[0], atol=1e-4)  # sigma 0: unchanged
    assert blurred[3].std() < x[3].std()
    out = jpeg(x, torch.tensor([0, 50, 80, 95]), groups=2)
    assert out.shape == x.shape and torch.equal(out[0], x[0]) and not torch.equal(out[1], x[1])


def test_loose_boxes_contain_the_true_box_and_grow_at_most_as_set() -> None:
    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[0.3, 0.3, 0.6, 0.5]]).repeat(200, 1)
    loose = loosen_boxes(boxes, 0.5, g)
    assert (loose[:, :2] <= boxes[:, :2]).all() and (loose[:, 2:] >= boxes[:, 2:]).all()
    assert (loose[:, 0] >= 0.3 - 0.5 * 0.3 - 1e-6).all() and (loose[:, 3] <= 0.5 + 0.1 + 1e-6).all()
    assert float((loose - boxes).abs().mean()) > 0.02  # they do grow


def test_training_crops_are_loose_jittered_or_whole_frame_studio_shots() -> None:
    g = torch.Generator().manual_seed(1)
    boxes = torch.tensor([[0.3, 0.3, 0.6, 0.5]]).repeat(100, 1)
    studio = torch.arange(100) >= 50
    s = AugmentSettings(box_loose_prob=1.0, studio_full_frame_prob=1.0)
    out = training_crop_boxes(boxes, studio, s, g)
    assert (out[studio] == torch.tensor([0.0, 0.0, 1.0, 1.0])).all()
    scene = out[~studio]
    assert (scene[:, :2] <= boxes[:50, :2]).all() and (scene[:, 2:] >= boxes[:50, 2:]).all()
    tight = training_crop_boxes(
        boxes, studio, AugmentSettings(box_loose_prob=0.0, studio_full_frame_prob=0.0), g
    )
    assert not (tight == torch.tensor([0.0, 0.0, 1.0, 1.0])).all(dim=1).any()
    assert ((tight[:, 2:] < boxes[:, 2:]).any(dim=1)).any()  # jittered boxes may cut in
