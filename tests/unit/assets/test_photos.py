"""The photo bank: bundled photos only (never downloaded), two disjoint halves."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from vsearch.assets import photos

pytestmark = pytest.mark.unit


def test_backgrounds_load_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("background photos must never be downloaded")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    photos.photo_bank.cache_clear()
    try:
        queries = photos.photo_bank("queries")
        training = photos.photo_bank("training")
    finally:
        photos.photo_bank.cache_clear()
    assert len(queries) >= 6 and len(training) >= 6
    assert all(im.mode == "RGB" and min(im.size) >= 256 for im in queries + training)
    # Evaluation's shopper photos are never on a background training pastes products on.
    assert not photos.QUERY_PHOTOS & photos.TRAINING_PHOTOS
    names = {p.name for p in photos.photo_paths()}
    assert names == photos.QUERY_PHOTOS | photos.TRAINING_PHOTOS
    img = photos.random_background(np.random.default_rng(0), 64)
    assert img.size == (64, 64)


def test_training_gets_every_further_bundled_photo_but_no_query_photo() -> None:
    training = photos.photo_bank("training")
    names = {p.name for p in photos.photo_paths()}
    # the wheels' further photos (matplotlib's among them) widen training's backgrounds ...
    assert {"grace_hopper.jpg", "retina.jpg", "ihc.png"} <= photos.TRAINING_PHOTOS <= names
    assert len(training) == len(photos.TRAINING_PHOTOS) >= 15
    # ... and the stereo twin of a query photo is not among them
    assert "motorcycle_right.png" not in names
    assert all(im.mode == "RGB" and min(im.size) >= 256 for im in training)
