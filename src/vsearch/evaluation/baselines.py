"""Baselines the trained model is compared with, as search encoders.

Why encoders: every system is evaluated through the same :class:`~vsearch.search.pipeline.
SearchPipeline` (index build, category routing, re-rank, grouping) so the comparison isolates
what the *model* contributes. The baselines answer different questions:

* ``colour_histogram``: what pixels alone give (no learning at all, no localisation);
* ``untrained``: what the architecture gives with random weights (the same config and seed);
* ``category_only`` and ``oracle`` are model folders trained elsewhere (``vsearch train
  --category-only`` / ``--oracle-truth``): what clicks add beyond categories, and the upper
  bound with true product ids. They load like the model itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vsearch.evaluation.report import MODEL
from vsearch.index.codes import pack_signs
from vsearch.model.export import META_FILE, fingerprint
from vsearch.model.net import NetConfig, VSearchNet
from vsearch.search.encoder import Encoded, NetEncoder

COLOUR_HISTOGRAM = "colour_histogram"
UNTRAINED = "untrained"
EXTERNAL_BASELINES = ("category_only", "oracle")  # trained elsewhere, passed as folders
BUILTIN_SYSTEMS = (MODEL, COLOUR_HISTOGRAM, UNTRAINED)
CHANNEL_LEVELS = 256  # uint8 pixel values
FULL_FRAME = (0.0, 0.0, 1.0, 1.0)


class ColourHistogramEncoder:
    """Joint RGB histogram of the frame as the embedding; signs of a seeded projection as codes.

    Why a joint (not per-channel) histogram: it keeps which colours occur *together*, the most
    a model-free descriptor can say about a product. Why a fixed random projection for the
    codes: sign random projections make Hamming distance estimate the angle between histograms
    (SimHash), so the binary index works as designed for this baseline too. It has no
    classifier (uniform category probabilities) and no detector (the box is the full frame); a
    given box (evaluation on true boxes) restricts the histogram to the pixels inside it.

    Args:
        categories: class order of ``category_probs`` (the catalog's categories).
        bins: levels per channel (``bins ** 3`` dimensions).
        bits: code length (``index.bits``).
        seed: seed of the projection.
        input_size: side of the photos it is given (the measuring decodes at this size).
        batch_size: photos per histogram batch (bounds memory).
    """

    has_classifier = False

    def __init__(
        self,
        categories: Sequence[str],
        bins: int,
        bits: int,
        seed: int,
        input_size: int,
        batch_size: int = 64,
    ) -> None:
        if bins < 2 or bins > CHANNEL_LEVELS:
            raise ValueError(f"bins must be in [2, {CHANNEL_LEVELS}], got {bins}")
        if bits < 8 or bits % 8:
            raise ValueError(f"bits must be a positive multiple of 8, got {bits}")
        self.categories = list(categories)
        self.bins, self.bits, self.input_size, self.batch_size = bins, bits, input_size, batch_size
        rng = np.random.default_rng(seed)
        self.projection = rng.standard_normal((bins**3, bits)).astype(np.float32)
        desc = json.dumps({"kind": COLOUR_HISTOGRAM, "bins": bins, "bits": bits}, sort_keys=True)
        self.fingerprint = hashlib.sha256(desc.encode() + self.projection.tobytes()).hexdigest()

    @property
    def dim(self) -> int:
        return self.bins**3

    def histograms(self, images: torch.Tensor, boxes: np.ndarray | None = None) -> np.ndarray:
        """``float32[n, bins**3]`` L2-normalised joint histograms of ``uint8[n, 3, S, S]``."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8[n, 3, S, S], got {images.dtype} {images.shape}")
        n, _, h, w = images.shape
        if boxes is not None and np.asarray(boxes).shape != (n, 4):
            raise ValueError(f"boxes must be float[{n}, 4], got {np.asarray(boxes).shape}")
        out = np.zeros((n, self.dim), dtype=np.float32)
        ys = (np.arange(h) + 0.5) / h  # pixel centres, normalised
        xs = (np.arange(w) + 0.5) / w
        for start in range(0, n, self.batch_size):
            px = images[start : start + self.batch_size].numpy().astype(np.int64)
            m = px.shape[0]
            q = (px * self.bins) // CHANNEL_LEVELS
            idx = (q[:, 0] * self.bins + q[:, 1]) * self.bins + q[:, 2]  # [m, h, w]
            weights = np.ones((m, h, w), dtype=np.float64)
            if boxes is not None:
                b = np.asarray(boxes, dtype=np.float64)[start : start + m]
                inside_x = (xs[None, :] >= b[:, 0:1]) & (xs[None, :] <= b[:, 2:3])
                inside_y = (ys[None, :] >= b[:, 1:2]) & (ys[None, :] <= b[:, 3:4])
                mask = inside_y[:, :, None] & inside_x[:, None, :]
                empty = ~mask.reshape(m, -1).any(axis=1)
                mask[empty] = True  # a box between pixel centres: fall back to the full frame
                weights = mask.astype(np.float64)
            flat = idx.reshape(m, -1) + (np.arange(m) * self.dim)[:, None]
            counts = np.bincount(
                flat.ravel(), weights=weights.ravel(), minlength=m * self.dim
            ).reshape(m, self.dim)
            out[start : start + m] = counts
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, np.finfo(np.float32).tiny)

    def encode(self, images: torch.Tensor, boxes: np.ndarray | None = None) -> Encoded:
        """Histograms, codes, uniform category probabilities, the full frame (or given) box."""
        emb = self.histograms(images, boxes)
        n = emb.shape[0]
        given = boxes is not None
        return Encoded(
            category_probs=np.full(
                (n, len(self.categories)), 1.0 / max(1, len(self.categories)), np.float32
            ),
            boxes=(
                np.asarray(boxes, dtype=np.float32)
                if given
                else np.tile(np.array(FULL_FRAME, np.float32), (n, 1))
            ),
            box_scores=np.ones(n, dtype=np.float32),
            embeddings=emb,
            codes=pack_signs(emb @ self.projection),
        )


def read_model_config(model_dir: Path) -> dict:
    """The ``model.json`` of a model folder (what :func:`untrained_encoder` copies)."""
    path = model_dir / META_FILE
    if not path.is_file():
        raise ValueError(f"{model_dir}: no {META_FILE}; not a model folder")
    return json.loads(path.read_text())


def untrained_net(config: NetConfig, seed: int) -> VSearchNet:
    """The architecture of ``config`` with random weights drawn from ``seed``.

    The global torch RNG is forked, so building it never shifts the caller's random stream.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = VSearchNet(config)
    return net.eval()


def untrained_encoder(
    model_dir: Path, seed: int, device: str | torch.device = "cpu", batch_size: int = 64
) -> NetEncoder:
    """A :class:`NetEncoder` over the model's architecture and config, randomly initialised."""
    meta = read_model_config(model_dir)
    config = NetConfig.from_dict(meta["config"])
    net = untrained_net(config, seed)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    info = {
        "name": UNTRAINED,
        "version": "0",
        "config": config.to_dict(),
        "fingerprint": fingerprint(state),
        "seed": seed,
    }
    return NetEncoder(net, info, device=device, batch_size=batch_size)
