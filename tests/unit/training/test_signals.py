"""Mined click signals in training: sample weights, switch clicks, forced skip-above negatives,
per-listing classes, and the switches that turn each off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pytorch_metric_learning import losses

from tests import kit
from vsearch.settings import LossSettings, SignalSettings
from vsearch.training.data import (
    BatchSampler,
    ClickLabels,
    click_samples,
    load_click_labels,
    per_listing_labels,
)
from vsearch.training.losses import JointLoss, weighted_mean, with_hard_negatives

pytestmark = pytest.mark.unit


def _labels() -> ClickLabels:
    """q1 first-clicked A at the top and switched to B (another product) at a half-examined
    position; q2 first-clicked C deep (propensity 0.25). Weights as mining writes them with
    first_click_weight 1 and switch_click_weight 0.5."""
    clicks = pd.DataFrame(
        {
            "query_id": ["q1", "q1", "q2"],
            "item_id": ["A", "B", "C"],
            "kind": ["first", "switch", "first"],
            "propensity": [1.0, 0.5, 0.25],
            "weight": [1.0, 0.5 / 0.5, 1.0 / 0.25],
        }
    )
    return ClickLabels(
        item_vid={"A": "v:A", "B": "v:B", "C": "v:C"},
        query_vid={"q1": "v:A", "q2": "v:C"},
        clicks=clicks,
    )


@pytest.mark.parametrize(
    ("propensity", "click_type", "raw"),
    [
        (True, True, [1.0, 0.5 * 2, 4.0]),  # click type x inverse propensity
        (False, True, [1.0, 0.5, 1.0]),  # click type only
        (True, False, [1.0, 2.0, 4.0]),  # inverse propensity only
        (False, False, [1.0, 1.0, 1.0]),
    ],
)
def test_sample_weights_follow_the_switched_on_signals(
    propensity: bool, click_type: bool, raw: list[float]
) -> None:
    signals = SignalSettings(propensity=propensity, click_type=click_type)
    got = click_samples(_labels(), np.array(["q1", "q2"]), signals)
    # q1's first click, q2's first click, then q1's switch click as a sample of its own class
    assert got["row"].tolist() == [0, 1, 0]
    assert got["vid"].tolist() == ["v:A", "v:C", "v:B"]
    want = np.array([raw[0], raw[2], raw[1]])
    np.testing.assert_allclose(got["weight"], want / want.mean())
    assert got["weight"].mean() == pytest.approx(1.0)


def test_without_a_click_table_every_query_is_one_sample_of_weight_one() -> None:
    labels = ClickLabels(item_vid={}, query_vid={"q1": "v:A", "q2": "v:C"})
    got = click_samples(labels, np.array(["q1", "q2"]), SignalSettings())
    assert got["vid"].tolist() == ["v:A", "v:C"] and got["weight"].tolist() == [1.0, 1.0]


def test_per_listing_labels_make_the_clicked_listing_the_class() -> None:
    got = per_listing_labels(_labels())
    assert got.item_vid == {} and got.query_vid == {"q1": "item:A", "q2": "item:C"}
    samples = click_samples(got, np.array(["q1"]), SignalSettings())
    assert samples["vid"].tolist() == ["item:A", "item:B"]


def test_weighted_mean_with_unit_weights_is_the_default_mean_and_zero_weights_drop_slots() -> None:
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=1)
    classes = torch.tensor([0, 0, 1, 1, 2, 2])
    joint = JointLoss(LossSettings(), num_classes=3, embedding_dim=8)
    plain = losses.NormalizedSoftmaxLoss(3, 8, temperature=LossSettings().proxy_temperature)
    plain.W.data.copy_(joint.proxy.W.data)
    raw = joint.proxy(emb, classes)
    ones = weighted_mean(raw, torch.ones(6), emb).item()
    assert ones == pytest.approx(plain(emb, classes).item())
    w = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    assert weighted_mean(raw, w, emb).item() == pytest.approx(plain(emb[:2], classes[:2]).item())
    heavy = torch.tensor([3.0, 3.0, 1.0, 1.0, 1.0, 1.0])
    per = raw["loss"]["losses"].detach()
    assert weighted_mean(raw, heavy, emb).item() == pytest.approx(((heavy * per).sum() / 10).item())


def test_forced_negatives_enter_the_pair_loss_both_ways_unless_same_class() -> None:
    classes = torch.tensor([0, 0, 1, 1])
    empty = torch.zeros(0, dtype=torch.long)
    mined = (empty, empty, empty, empty)
    forced = torch.tensor([[0, 2], [1, 0]])  # (1, 0) share a class: contradicts the labels
    _, _, a2, n = with_hard_negatives(mined, forced, classes)
    assert a2.tolist() == [0, 2] and n.tolist() == [2, 0]
    # a close negative the miner did not pick now costs something
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [1.0, 0.05]]), dim=1)
    joint = JointLoss(LossSettings(), num_classes=2, embedding_dim=2)
    cls = torch.tensor([0, 0, 1])
    pos = (torch.tensor([0]), torch.tensor([1]), empty, empty)
    without = weighted_mean(joint.pair(emb, cls, pos), None, emb)
    hard = with_hard_negatives(pos, torch.tensor([[0, 2]]), cls)
    with_neg = weighted_mean(joint.pair(emb, cls, hard), None, emb)
    assert with_neg.item() > without.item()


def test_batches_say_where_each_skip_above_negative_landed(tiny_data) -> None:
    sampler = BatchSampler(tiny_data, 12, 2, 0.25, 0.5, 1.0)
    rng = np.random.default_rng(1)
    seen = 0
    for _ in range(5):
        b = sampler.sample(rng)
        items = np.concatenate((b.scene_items, b.studio_items))
        for j, slot in b.negative_pairs:
            assert items[slot] in tiny_data.query_negatives[b.queries[j]]
            seen += 1
    assert seen  # the tiny drop gives every query a negative


def test_skip_above_switch_drops_the_negatives(tiny_world) -> None:
    s = kit.tiny_settings()
    s.train.signals.skip_above = False
    data = kit.train_data(tiny_world.drop, load_click_labels(tiny_world.mining), s)
    assert data.summary()["queries_with_negatives"] == 0
    b = BatchSampler(data, 12, 2, 0.25, 0.5, 1.0).sample(np.random.default_rng(0))
    assert b.negative_pairs.shape == (0, 2)
