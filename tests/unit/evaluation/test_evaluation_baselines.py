"""Baselines: the colour histogram encoder by hand, the untrained net's identity, CLI parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests import kit
from vsearch.errors import BadInput
from vsearch.evaluation.baselines import ColourHistogramEncoder, untrained_encoder
from vsearch.evaluation.cli import parse_baselines
from vsearch.model.export import fingerprint, save_model

pytestmark = pytest.mark.unit

CATS = ["bag", "cup", "hat"]


def _encoder(**kw: object) -> ColourHistogramEncoder:
    args = {"bins": 2, "bits": 16, "seed": 1, "input_size": 4} | kw
    return ColourHistogramEncoder(CATS, **args)  # type: ignore[arg-type]


def _image(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> torch.Tensor:
    """A 4x4 photo: two rows of one colour above two rows of another."""
    img = torch.empty(3, 4, 4, dtype=torch.uint8)
    img[:, :2] = torch.tensor(top, dtype=torch.uint8).view(3, 1, 1)
    img[:, 2:] = torch.tensor(bottom, dtype=torch.uint8).view(3, 1, 1)
    return img


def test_histogram_by_hand_and_box_restricts_it() -> None:
    enc = _encoder()
    # red (255,0,0) -> bin (1,0,0) = index 4; blue (0,0,255) -> (0,0,1) = index 1
    images = torch.stack([_image((255, 0, 0), (0, 0, 255))])
    h = enc.histograms(images)
    expected = np.zeros(8)
    expected[[4, 1]] = 8 / np.sqrt(8**2 + 8**2)
    np.testing.assert_allclose(h[0], expected, atol=1e-6)
    top_half = enc.histograms(images, np.array([[0.0, 0.0, 1.0, 0.5]]))
    np.testing.assert_allclose(top_half[0], np.eye(8)[4], atol=1e-6)


def test_encoded_is_uniform_full_frame_and_deterministic() -> None:
    enc = _encoder()
    images = torch.stack([_image((255, 0, 0), (0, 0, 255)), _image((10, 200, 30), (10, 200, 30))])
    out = enc.encode(images)
    assert enc.has_classifier is False
    np.testing.assert_allclose(out.category_probs, np.full((2, 3), 1 / 3))
    np.testing.assert_allclose(out.boxes, [[0, 0, 1, 1]] * 2)
    np.testing.assert_allclose(np.linalg.norm(out.embeddings, axis=1), 1.0, rtol=1e-6)
    assert out.codes.shape == (2, 2) and out.codes.dtype == np.uint8
    again = _encoder().encode(images)
    np.testing.assert_array_equal(out.codes, again.codes)
    assert _encoder().fingerprint == enc.fingerprint != _encoder(seed=2).fingerprint
    with pytest.raises(ValueError):
        enc.encode(images.float())


def test_untrained_encoder_copies_the_config_with_seeded_random_weights(tmp_path) -> None:
    trained = kit.tiny_net(CATS, seed=123, widths=(4, 8, 8, 16), embedding_dim=8, bits=16)
    config = trained.config
    info = save_model(trained, tmp_path / "model", {"name": "m"})
    a = untrained_encoder(tmp_path / "model", seed=5)
    b = untrained_encoder(tmp_path / "model", seed=5)
    c = untrained_encoder(tmp_path / "model", seed=6)
    assert a.net.config == config and a.categories == CATS
    assert a.fingerprint == b.fingerprint != c.fingerprint != info["fingerprint"]
    assert a.fingerprint == fingerprint(a.net.state_dict())
    out = a.encode(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    assert out.embeddings.shape == (2, 8) and out.codes.shape == (2, 2)


def test_parse_baselines() -> None:
    assert parse_baselines(["oracle=runs/o", " category_only = runs/c "]) == {
        "oracle": Path("runs/o"),
        "category_only": Path("runs/c"),
    }
    for bad in (["oracle"], ["=x"], ["oracle="], ["a=x", "a=y"]):
        with pytest.raises(BadInput):
            parse_baselines(bad)
