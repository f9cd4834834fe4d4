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
