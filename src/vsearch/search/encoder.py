"""Encoders: what a model says about photos (category, box, embedding, code), as numpy.

Why a protocol: the search pipeline must run the trained network, the evaluation baselines
(colour histograms, an untrained net) and the oracle through the *same* code, so it only needs
"photos in, :class:`Encoded` out" plus the identity (fingerprint) that index releases are
checked against. :class:`NetEncoder` is the served implementation over a
:class:`~vsearch.model.net.VSearchNet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from vsearch.errors import BadInput
from vsearch.model.export import ProposalKnobs, embed_images, load_model
from vsearch.model.net import SECOND, VSearchNet


@dataclass
class Encoded:
    """What an encoder says about ``n`` photos (numpy, CPU).

    Attributes:
        category_probs: ``float32[n, C]`` classifier probabilities over the encoder's
            ``categories`` (an encoder without a classifier gives uniform rows).
        boxes: ``float32[n, 4]`` normalised xyxy of the described region.
        box_scores: ``float32[n]`` detection confidence (1 for given boxes).
        embeddings: ``float32[n, d]`` L2-normalised.
        codes: ``uint8[n, bits/8]`` packed sign bits (:func:`vsearch.index.codes.pack_signs`).
        candidates: ``float32[n, m, 4]`` candidate boxes (objects) per photo, most confident
            first, NaN past the last one; ``None`` when the encoder proposed none.
        candidate_scores: ``float32[n, m]`` their objectness in [0, 1] (NaN: no candidate).
        chosen: ``int64[n]`` the candidate each row describes (-1: a given box).
        second: the second look (:meth:`~vsearch.model.net.VSearchNet.look_inside`): the same
            rows described at the box the detector finds inside each described box (grown),
            its ``boxes`` that box; ``None`` when not asked for.
    """

    category_probs: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    embeddings: np.ndarray
    codes: np.ndarray
    candidates: np.ndarray | None = None
    candidate_scores: np.ndarray | None = None
    chosen: np.ndarray | None = None
    second: Encoded | None = None

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def take(self, rows: np.ndarray | slice) -> Encoded:
        """The rows ``rows`` of every array (a sub-batch)."""
        return Encoded(
            *(
                None
                if (a := getattr(self, f)) is None
                else (a.take(rows) if f == "second" else a[rows])
                for f in self.__dataclass_fields__
            )
        )

    @classmethod
    def concat(cls, parts: list[Encoded]) -> Encoded:
        """Rows of all parts in order (an optional array survives only if every part has it)."""
        cols = [[getattr(p, f) for p in parts] for f in cls.__dataclass_fields__]
        return cls(
            *(
                None
                if any(a is None for a in col)
                else (cls.concat(col) if f == "second" else np.concatenate(col))
                for f, col in zip(cls.__dataclass_fields__, cols, strict=True)
            )
        )

    @property
    def looks(self) -> list[Encoded]:
        """Every description of the rows: this one, then the second look's when there is one."""
        return [self] if self.second is None else [self, self.second]

    def candidates_of(self, i: int) -> list[dict[str, Any]]:
        """Row ``i``'s candidates as ``{"box", "score"}`` dicts, most confident first."""
        if self.candidates is None or self.candidate_scores is None:
            return []
        keep = ~np.isnan(self.candidate_scores[i])
        return [
            {"box": [float(v) for v in box], "score": float(score)}
            for box, score in zip(
                self.candidates[i][keep], self.candidate_scores[i][keep], strict=True
            )
        ]


@runtime_checkable
class Encoder(Protocol):
    """Photos → :class:`Encoded`. Optional attributes the pipeline uses when present:
    ``input_size`` (side uploads are decoded at), ``name`` and ``version`` (recorded in index
    releases), ``proposes`` (``encode`` also takes ``candidates``, ``proposals`` and
    ``second_look``, as :meth:`NetEncoder.encode`)."""

    categories: list[str]
    has_classifier: bool
    fingerprint: str

    def encode(self, images: torch.Tensor, boxes: np.ndarray | None = None) -> Encoded:
        """Describe photos.

        Args:
            images: ``uint8[n, 3, S, S]`` (``S`` = the model's input size).
            boxes: normalised xyxy ``float[n, 4]`` to describe instead of detecting (a box the
                user drew, or evaluation on true boxes).
        """
        ...


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` → CUDA when present, else CPU."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for but no CUDA device is available; use 'auto'")
    return torch.device(name)


class NetEncoder:
    """The served network as an :class:`Encoder` (detect → crop → embed, hash, classify).

    Args:
        net: the network (put in eval mode here).
        meta: the model folder's metadata (needs ``fingerprint``; ``name``/``version`` kept).
        device: where to compute.
        batch_size: photos per forward pass.
    """

    def __init__(
        self,
        net: VSearchNet,
        meta: dict[str, Any],
        device: str | torch.device = "cpu",
        batch_size: int = 64,
    ) -> None:
        if "fingerprint" not in meta:
            raise ValueError("model metadata has no 'fingerprint'; export it with save_model")
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.meta = dict(meta)
        self.batch_size = batch_size
        self.categories = list(net.config.categories)
        # A one-class head says nothing; the pipeline then relies on the neighbour vote.
        self.has_classifier = net.config.num_categories >= 2
        self.fingerprint = str(meta["fingerprint"])
        self.name = str(meta.get("name", "vsearch-net"))
        self.version = str(meta.get("version", "0"))
        self.input_size = int(net.config.input_size)
        self.proposes = True  # encode() takes ``proposals`` and ``candidates``

    @classmethod
    def load(
        cls, model_dir: Path, device: str | torch.device = "cpu", batch_size: int = 64
    ) -> NetEncoder:
        """From a model folder (:func:`vsearch.model.export.save_model`), fingerprint checked."""
        dev = resolve_device(device)
        net, meta = load_model(Path(model_dir), dev)
        return cls(net, meta, dev, batch_size)

    def encode(
        self,
        images: torch.Tensor,
        boxes: np.ndarray | None = None,
        candidates: np.ndarray | None = None,
        proposals: ProposalKnobs | None = None,
        second_look: float | None = None,
    ) -> Encoded:
        """See :meth:`Encoder.encode`. Rows of ``boxes`` that are all NaN are detected, so a
        batch may mix user-drawn boxes and photos without one.

        With ``proposals`` every photo also gets its candidate boxes, and the detected rows
        describe candidate ``candidates[i]`` (``int[n]``, default 0: the most confident, which
        is the box detection gives without ``proposals``) in the same forward pass.
        With ``second_look`` (a growth share) every row also gets its second look
        (:attr:`Encoded.second`).

        Raises:
            NoSuchCandidate: a chosen index past a photo's last candidate (a
                :class:`~vsearch.errors.BadInput`).
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [n, 3, S, S], got {tuple(images.shape)}")
        n = images.shape[0]
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float32)
            if boxes.shape != (n, 4):
                raise ValueError(f"boxes must be float[{n}, 4], got {boxes.shape}")
        if proposals is not None and proposals.k > 0:
            choice = np.zeros(n, np.int64) if candidates is None else np.asarray(candidates)
            if choice.shape != (n,):
                raise ValueError(f"candidates must be int[{n}], got {choice.shape}")
            return self._run(images, boxes, second_look, proposals, choice.astype(np.int64))
        if candidates is not None and np.any(np.asarray(candidates) != 0):
            raise BadInput("a candidate was chosen but none are proposed (search.proposals: 0)")
        if boxes is None:
            return self._run(images, None, second_look)
        detect = np.isnan(boxes).all(axis=1)
        if not detect.any():
            return self._run(images, boxes, second_look)
        if detect.all():
            return self._run(images, None, second_look)
        given = np.flatnonzero(~detect)
        found = np.flatnonzero(detect)
        parts = [
            self._run(images[torch.from_numpy(given)], boxes[given], second_look),
            self._run(images[torch.from_numpy(found)], None, second_look),
        ]
        order = np.argsort(np.concatenate([given, found]), kind="stable")
        return Encoded.concat(parts).take(order)

    def _run(
        self,
        images: torch.Tensor,
        boxes: np.ndarray | None,
        second_look: float | None = None,
        proposals: ProposalKnobs | None = None,
        choice: np.ndarray | None = None,
    ) -> Encoded:
        n = images.shape[0]
        looked = second_look is not None
        if n == 0:
            cfg = self.net.config
            k = proposals.k if proposals is not None else 0

            def nothing() -> Encoded:
                return Encoded(
                    np.zeros((0, len(self.categories)), np.float32),
                    np.zeros((0, 4), np.float32),
                    np.zeros(0, np.float32),
                    np.zeros((0, cfg.embedding_dim), np.float32),
                    np.zeros((0, cfg.bits // 8), np.uint8),
                )

            empty = nothing()
            if proposals is not None:
                empty.candidates = np.zeros((0, k, 4), np.float32)
                empty.candidate_scores = np.zeros((0, k), np.float32)
                empty.chosen = np.zeros(0, np.int64)
            empty.second = nothing() if looked else None
            return empty
        out = embed_images(
            self.net,
            images,
            boxes=None if boxes is None else torch.from_numpy(np.ascontiguousarray(boxes)),
            batch_size=self.batch_size,
            device=self.device,
            proposals=proposals,
            choice=None if choice is None else torch.from_numpy(choice),
            second_look=second_look,
        )
        enc = self._described(out, n)
        if proposals:
            enc.candidates = out["candidates"].astype(np.float32)
            enc.candidate_scores = out["candidate_scores"].astype(np.float32)
            enc.chosen = out["chosen"].astype(np.int64)
        enc.second = self._described(out, n, SECOND) if looked else None
        return enc

    def _described(self, out: dict[str, np.ndarray], n: int, prefix: str = "") -> Encoded:
        """One description of ``n`` photos from :func:`embed_images`'s ``prefix``-ed outputs."""
        probs = out[prefix + "category_probs"].astype(np.float32).reshape(n, -1)
        if not self.has_classifier:
            probs = np.full((n, len(self.categories)), 1.0 / len(self.categories), np.float32)
        return Encoded(
            category_probs=probs,
            boxes=out[prefix + "boxes"].astype(np.float32).reshape(n, 4),
            box_scores=out[prefix + "box_scores"].astype(np.float32).reshape(n),
            embeddings=out[prefix + "embedding"].astype(np.float32).reshape(n, -1),
            codes=out[prefix + "codes"].reshape(n, -1),
        )
