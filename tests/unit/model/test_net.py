"""VSearchNet: shapes and ranges of every head, boxes valid, codes = sign of the hash."""

from __future__ import annotations

import pytest
import torch

from tests import kit
from vsearch.model.backbones import build_backbone
from vsearch.model.heads import decode_boxes
from vsearch.model.net import NetConfig, VSearchNet, grow_boxes

pytestmark = pytest.mark.unit


def tiny_net(**over: object) -> VSearchNet:
    return kit.tiny_net(("a", "b", "c"), **over)


def test_forward_returns_every_head_with_valid_values() -> None:
    net = tiny_net().eval()
    out = net(torch.rand(5, 3, 64, 64))
    assert out["boxes"].shape == (5, 4)
    assert out["embedding"].shape == (5, 16)
    assert out["hash_logits"].shape == (5, 32)
    assert out["category_logits"].shape == (5, 3)
    b = out["boxes"]
    assert ((b >= 0) & (b <= 1)).all()
    assert (b[:, 0] < b[:, 2]).all() and (b[:, 1] < b[:, 3]).all()
    assert torch.allclose(out["embedding"].norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.equal(out["codes"], torch.where(out["hash_logits"] >= 0, 1.0, -1.0))
    assert ((out["box_scores"] > 0) & (out["box_scores"] < 1)).all()


def test_boxes_stay_valid_for_extreme_head_outputs() -> None:
    """Even when every edge distance saturates, clamping cannot flip or collapse a box."""
    net = tiny_net().eval()
    with torch.no_grad():
        net.box_head.conv[-1].bias.fill_(50.0)
        far = net(torch.rand(3, 3, 64, 64))["boxes"]
        net.box_head.conv[-1].bias.fill_(-50.0)
        near = net(torch.rand(3, 3, 64, 64))["boxes"]
    for b in (far, near):
        assert ((b >= 0) & (b <= 1)).all()
        assert (b[:, 0] < b[:, 2]).all() and (b[:, 1] < b[:, 3]).all()


def test_encode_uses_given_boxes() -> None:
    net = tiny_net().eval()
    x = torch.rand(2, 3, 64, 64)
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.3, 0.2, 0.9, 0.9]])
    out = net.encode(x, boxes)
    assert torch.equal(out["boxes"], boxes)
    assert torch.equal(out["box_scores"], torch.ones(2))
    direct = net.describe(net.crop(x, boxes))
    assert torch.allclose(out["embedding"], direct["embedding"])


def test_crop_reads_the_box_region() -> None:
    """A crop of a box filled with one colour is that colour (roi_align on the full image)."""
    net = tiny_net(crop_margin=0.0)
    x = torch.zeros(1, 3, 64, 64)
    x[:, 0, 16:48, 8:40] = 1.0
    crop = net.crop(x, torch.tensor([[8 / 64, 16 / 64, 40 / 64, 48 / 64]]))
    assert crop.shape == (1, 3, 32, 32)
    assert crop[0, 0, 2:-2, 2:-2].min() > 0.99 and crop[0, 1:].abs().max() < 1e-6


def test_grow_boxes_clips_to_the_image() -> None:
    g = grow_boxes(torch.tensor([[0.0, 0.5, 0.5, 1.0]]), 0.1)
    assert torch.allclose(g, torch.tensor([[0.0, 0.45, 0.55, 1.0]]))


def test_decode_picks_the_most_confident_cell() -> None:
    heat = torch.full((1, 2, 2), -5.0)
    heat[0, 1, 0] = 3.0
    cells = torch.rand(1, 2, 2, 4)
    boxes, scores = decode_boxes(heat, cells)
    assert torch.equal(boxes[0], cells[0, 1, 0])
    assert scores[0] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())


def test_separate_localizer_has_its_own_trunk() -> None:
    net = tiny_net(localizer_widths=(4, 8, 8, 16))
    assert net.localizer is not None and net.localizer is not net.backbone
    heat, cells = net.localize(torch.rand(2, 3, 64, 64))
    assert heat.shape == (2, 4, 4) and cells.shape == (2, 4, 4, 4)


def test_backbones_by_name() -> None:
    narrow = build_backbone("narrow", (8, 16, 24, 32))
    assert narrow(torch.rand(1, 3, 64, 64)).shape == (1, 32, 4, 4)
    assert (narrow.out_channels, narrow.stride) == (32, 16)
    tv = build_backbone("mobilenet_v3_small")
    assert tv(torch.rand(1, 3, 64, 64)).shape[1] == tv.out_channels
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg_from_mars")


def test_config_round_trip() -> None:
    cfg = NetConfig(categories=("a", "b"), localizer_widths=(4, 8, 8, 16))
    assert NetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        NetConfig.from_dict({**cfg.to_dict(), "colour": 1})


def test_coarse_stem_halves_the_grid_and_bad_stems_fail() -> None:
    coarse = build_backbone("narrow", (8, 16, 24, 32), stem_stride=4)
    assert coarse.stride == 32 and coarse(torch.rand(1, 3, 64, 64)).shape == (1, 32, 2, 2)
    with pytest.raises(ValueError, match="stem_stride"):
        build_backbone("narrow", (8, 16, 24, 32), stem_stride=3)


def test_bfloat16_trunks_keep_float32_heads() -> None:
    net = tiny_net(stem_stride=4).eval()
    x = torch.rand(2, 3, 64, 64)
    ref = net(x)
    net.trunk_dtype = torch.bfloat16
    out = net(x)
    assert all(v.dtype == torch.float32 for v in out.values())
    assert torch.allclose(out["embedding"].norm(dim=1), torch.ones(2), atol=1e-5)
    assert (out["embedding"] * ref["embedding"]).sum(dim=1).min() > 0.9  # close to float32


def test_differentiable_crop_matches_roi_align_and_moves_the_box() -> None:
    """The training crop samples the same pixels as serving's roi_align, and a loss on it
    reaches the box: on a left-to-right ramp, "brighter is better" pulls the box right."""
    net = tiny_net(crop_margin=0.0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 64, 64, generator=g)
    lo = torch.rand(6, 2, generator=g) * 0.5
    boxes = torch.cat((lo, lo + 0.2 + 0.3 * torch.rand(6, 2, generator=g)), dim=1).clamp(0, 1)
    boxes[0] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    served = net.crop(x, boxes)
    boxes.requires_grad_(True)
    trained = net.crop(x, boxes, differentiable=True)
    assert torch.allclose(served, trained, atol=1e-4)

    bright = torch.linspace(0, 1, 64).expand(1, 3, 64, 64).clone()
    box = torch.tensor([[0.2, 0.2, 0.6, 0.8]], requires_grad=True)
    net.crop(bright, box, differentiable=True).mean().neg().backward()
    assert box.grad is not None
    assert box.grad[0, 2] < 0 and box.grad[0, 0] < 0  # both x edges want to move right
    assert box.grad[0, [1, 3]].abs().max() < 1e-6  # brightness does not change with y


def test_look_inside_maps_the_found_box_back_to_the_photo() -> None:
    """Every cell predicts its centre +- 0.25 and the heat is flat, so the box found in a
    region is the first cell's, [0, 0, 0.25 + 0.5/h, 0.25 + 0.5/w] of the region (clipped),
    placed where the region is in the photo."""
    net = tiny_net().eval()
    with torch.no_grad():
        last = net.box_head.conv[-1]
        last.weight.zero_()
        last.bias.zero_()
        last.bias[1:] = torch.logit(torch.tensor(0.25))  # MIN_EDGE is negligible here
        h = net.localize(torch.rand(1, 3, net.config.frame_size, net.config.frame_size))[0].shape[1]
        regions = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.2, 0.4, 0.6, 0.8]])
        boxes, scores = net.look_inside(torch.rand(2, 3, 64, 64), regions)
    edge = 0.25 + 0.5 / h
    inner = torch.tensor([0.0, 0.0, edge, edge])
    side = (regions[:, 2:] - regions[:, :2]).repeat(1, 2)
    assert torch.allclose(boxes, regions[:, :2].repeat(1, 2) + inner * side, atol=1e-3)
    assert torch.allclose(scores, torch.full((2,), 0.5))


def test_second_look_describes_a_box_inside_the_grown_box() -> None:
    net = tiny_net().eval()
    x = torch.rand(3, 3, 64, 64)
    given = torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.3, 0.2, 0.9, 0.9], [0.0, 0.0, 1.0, 1.0]])
    with torch.no_grad():
        once = net.encode(x, given)
        twice = net.encode(x, given, second_look=0.25)
        detected = net.encode(x, None, second_look=0.25)
    # The first look is unchanged by asking for a second one.
    for key in ("boxes", "box_scores", "embedding", "hash_logits", "category_logits", "codes"):
        assert torch.allclose(once[key], twice[key], atol=1e-5), key
    grown = grow_boxes(given, 0.25)
    inner = twice["second_boxes"]
    assert (inner[:, :2] >= grown[:, :2] - 1e-6).all() and (
        inner[:, 2:] <= grown[:, 2:] + 1e-6
    ).all()
    crop = net.describe(net.crop(x, inner))
    assert torch.allclose(twice["second_embedding"], crop["embedding"], atol=1e-5)
    assert torch.equal(twice["second_codes"], torch.where(crop["hash_logits"] >= 0, 1.0, -1.0))
    assert set(detected) == set(twice) and detected["second_embedding"].shape == (3, 16)
    assert not any(k.startswith("second_") for k in once)
