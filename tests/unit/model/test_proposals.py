"""Candidate boxes: top-k cells after NMS, slot 0 = detect's box, the chosen one is described."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests import kit
from vsearch.errors import NoSuchCandidate
from vsearch.model.export import ProposalKnobs, embed_images
from vsearch.model.heads import decode_proposals, local_max

pytestmark = pytest.mark.unit


def grid_with_two_products() -> tuple[torch.Tensor, torch.Tensor]:
    """A 4x4 grid: product A at cell (0,0) and its neighbour (0,1) predicting nearly the same
    box, a separate peak at (0,3) predicting A's box too, product B at (3,3), a faint cell at
    (2,0); the rest far below any threshold."""
    heat = torch.full((1, 4, 4), -8.0)
    cells = torch.zeros(1, 4, 4, 4)
    cells[..., 2:] = 0.05  # tiny default boxes, each at its own place
    for y in range(4):
        for x in range(4):
            cells[0, y, x] = torch.tensor([x / 4, y / 4, x / 4 + 0.05, y / 4 + 0.05])
    a = torch.tensor([0.0, 0.0, 0.4, 0.4])
    heat[0, 0, 0], cells[0, 0, 0] = 4.0, a
    heat[0, 0, 1], cells[0, 0, 1] = 3.0, a + torch.tensor([0.02, 0.0, 0.02, 0.0])
    heat[0, 0, 3], cells[0, 0, 3] = 2.0, a + torch.tensor([0.0, 0.02, 0.0, 0.02])
    heat[0, 3, 3], cells[0, 3, 3] = 1.0, torch.tensor([0.6, 0.6, 1.0, 1.0])
    heat[0, 2, 0], cells[0, 2, 0] = -1.0, torch.tensor([0.0, 0.5, 0.2, 0.7])
    return heat, cells


def test_nms_keeps_one_box_per_product_most_confident_first() -> None:
    heat, cells = grid_with_two_products()
    boxes, scores = decode_proposals(heat, cells, k=4, iou_threshold=0.5, min_score=0.3)
    assert boxes.shape == (1, 4, 4) and scores.shape == (1, 4)
    # A's neighbour is no peak; the (0,3) peak overlaps A (IoU ~0.9) and goes under NMS; the
    # faint cell is below min_score.
    assert torch.equal(boxes[0, 0], cells[0, 0, 0])
    assert torch.equal(boxes[0, 1], cells[0, 3, 3])
    assert scores[0, :2].tolist() == pytest.approx(torch.sigmoid(torch.tensor([4.0, 1.0])).tolist())
    assert torch.isnan(scores[0, 2:]).all() and torch.isnan(boxes[0, 2:]).all()


def test_threshold_and_k_bound_the_candidates() -> None:
    heat, cells = grid_with_two_products()
    # A looser NMS keeps the (0,3) peak; A's neighbour (not a peak) never comes back.
    _, loose = decode_proposals(heat, cells, k=4, iou_threshold=0.95, min_score=0.3)
    expect = torch.sigmoid(torch.tensor([4.0, 2.0, 1.0])).tolist()
    assert loose[0, :3].tolist() == pytest.approx(expect) and torch.isnan(loose[0, 3])
    _, low = decode_proposals(heat, cells, k=8, iou_threshold=0.5, min_score=0.1)
    assert (~torch.isnan(low[0])).sum() == 3  # A, B and the faint cell (0.27)
    _, top2 = decode_proposals(heat, cells, k=2, iou_threshold=0.95, min_score=0.3)
    assert top2[0].tolist() == pytest.approx(expect[:2])
    _, one = decode_proposals(heat, cells, k=1, iou_threshold=0.5, min_score=0.0)
    assert one.shape == (1, 1)
    with pytest.raises(ValueError, match="k must be"):
        decode_proposals(heat, cells, k=0, iou_threshold=0.5, min_score=0.0)


def test_the_best_cell_survives_any_min_score() -> None:
    heat, cells = grid_with_two_products()
    heat = heat - 20.0  # every cell far below the threshold
    boxes, scores = decode_proposals(heat, cells, k=3, iou_threshold=0.5, min_score=0.5)
    assert torch.equal(boxes[0, 0], cells[0, 0, 0])
    assert 0 < scores[0, 0] < 0.5 and torch.isnan(scores[0, 1:]).all()


def test_batches_decode_each_photo_on_its_own() -> None:
    heat, cells = grid_with_two_products()
    flipped_heat, flipped_cells = heat.flip(1, 2), cells.flip(1, 2)
    both_b, both_s = decode_proposals(
        torch.cat([heat, flipped_heat]), torch.cat([cells, flipped_cells]), 3, 0.5, 0.3
    )
    for i, (h, c) in enumerate([(heat, cells), (flipped_heat, flipped_cells)]):
        b, s = decode_proposals(h, c, 3, 0.5, 0.3)
        assert torch.equal(both_b[i].nan_to_num(-1), b[0].nan_to_num(-1))
        assert torch.equal(both_s[i].nan_to_num(-1), s[0].nan_to_num(-1))


def test_propose_slot_zero_is_detect() -> None:
    net = kit.tiny_net(("a", "b", "c")).eval()
    x = torch.rand(6, 3, 64, 64)
    with torch.no_grad():
        boxes, scores = net.propose(x, 4, 0.5, 0.0)
        det_boxes, det_scores = net.detect(x)
    assert boxes.shape == (6, 4, 4) and scores.shape == (6, 4)
    assert torch.equal(boxes[:, 0], det_boxes) and torch.equal(scores[:, 0], det_scores)
    valid = ~torch.isnan(scores)
    assert ((scores[valid] >= 0) & (scores[valid] <= 1)).all()
    filled = scores.nan_to_num(-1.0)
    assert (filled[:, :-1] >= filled[:, 1:]).all()  # sorted, padding last


def test_embed_images_describes_the_chosen_candidate() -> None:
    net = kit.tiny_net(("a", "b", "c")).eval()
    images = (torch.rand(4, 3, 64, 64) * 255).to(torch.uint8)
    knobs = ProposalKnobs(k=6, iou_threshold=0.95, min_score=0.0)
    plain = embed_images(net, images)
    best = embed_images(net, images, proposals=knobs)
    # The default (candidate 0) is exactly today's detect → crop → embed.
    np.testing.assert_array_equal(best["boxes"], plain["boxes"])
    np.testing.assert_allclose(best["embedding"], plain["embedding"], atol=1e-6)
    np.testing.assert_array_equal(best["chosen"], np.zeros(4))
    assert best["candidates"].shape == (4, 6, 4)
    counts = (~np.isnan(best["candidate_scores"])).sum(axis=1)
    pick = (counts >= 2).astype(np.int64)  # candidate 1 where the photo has one
    assert pick.sum() >= 2, f"an untrained net should give several photos 2+ peaks: {counts}"

    # Candidate 1 of those photos, and one photo with a given box (which wins).
    given = np.full((4, 4), np.nan, np.float32)
    given[2] = [0.1, 0.2, 0.6, 0.7]
    second = embed_images(
        net,
        images,
        boxes=torch.from_numpy(given),
        proposals=knobs,
        choice=torch.from_numpy(pick),
    )
    rows = np.arange(4)
    expect = best["candidates"][rows, pick].copy()
    expect[2] = given[2]
    np.testing.assert_array_equal(second["boxes"], expect)
    chosen = pick.copy()
    chosen[2] = -1
    np.testing.assert_array_equal(second["chosen"], chosen)
    scores = best["candidate_scores"][rows, pick].copy()
    scores[2] = 1.0
    np.testing.assert_array_equal(second["box_scores"], scores)
    direct = embed_images(net, images, boxes=torch.from_numpy(expect))
    np.testing.assert_allclose(second["embedding"], direct["embedding"], atol=1e-6)


def test_a_choice_past_the_candidates_names_the_photo() -> None:
    net = kit.tiny_net(("a", "b", "c")).eval()
    images = (torch.rand(3, 3, 64, 64) * 255).to(torch.uint8)
    knobs = ProposalKnobs(k=2, iou_threshold=0.5, min_score=1.0)  # only slot 0 survives
    choice = torch.tensor([0, 1, 0])
    with pytest.raises(NoSuchCandidate, match="image 1: candidate 1 asked for, it has 1") as e:
        embed_images(net, images, proposals=knobs, choice=choice, batch_size=2)
    assert e.value.rows == [1]
    out = embed_images(net, images, proposals=knobs, choice=torch.zeros(3, dtype=torch.long))
    assert not math.isnan(float(out["box_scores"].sum()))


def test_local_max_is_a_3x3_max_pool() -> None:
    heat = torch.randn(5, 7, 6)
    expect = torch.nn.functional.max_pool2d(heat, 3, stride=1, padding=1)
    assert torch.equal(local_max(heat), expect)
