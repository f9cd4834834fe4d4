"""Packaging the trained network for the index and the service.

What a model folder holds (``save_model``)::

    MODEL_DIR/
      weights.pt      state dict (tensors only; loads with ``weights_only=True``)
      model.json      NetConfig, fingerprint, name/version, anything the trainer adds
      program.pt2     optional: ``torch.export`` program with a dynamic batch dimension

Why a fingerprint: index releases store it and the service refuses an index built by another model
(docs/learning.md#the-model); it is the sha256 of the weights (names, dtypes, shapes, bytes), so it
changes exactly when the weights change. Why an input example of batch 2: exporting with a batch-1
example freezes the batch dimension under ``torch.export``
(docs/operations.md#tool-behaviour-we-rely-on).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsearch.errors import NoSuchCandidate
from vsearch.fsio import atomic_path, atomic_write_text
from vsearch.model.net import SECOND, NetConfig, VSearchNet

WEIGHTS_FILE = "weights.pt"
META_FILE = "model.json"
PROGRAM_FILE = "program.pt2"
EXAMPLE_BATCH = 2  # >= 2: a batch-1 example freezes the batch dimension under torch.export
OUTPUT_NAMES = ("boxes", "box_scores", "category_probs", "embedding", "hash_logits")


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict: names, dtypes, shapes and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_model(net: VSearchNet, out: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write weights and metadata; returns the metadata (with ``fingerprint``)."""
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    info = {"config": net.config.to_dict(), "fingerprint": fingerprint(state), **(meta or {})}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        torch.save(state, tmp)
    atomic_write_text(out / META_FILE, json.dumps(info, indent=2, default=str))
    return info


def load_model(model_dir: Path, device: str | torch.device = "cpu") -> tuple[VSearchNet, dict]:
    """Rebuild the network from a model folder, in eval mode, checking the fingerprint.

    Raises:
        ValueError: files missing, or the weights do not match the recorded fingerprint.
    """
    meta_path, weights = model_dir / META_FILE, model_dir / WEIGHTS_FILE
    if not meta_path.is_file() or not weights.is_file():
        raise ValueError(
            f"{model_dir} is not a model folder (needs {META_FILE} and {WEIGHTS_FILE})"
        )
    meta = json.loads(meta_path.read_text())
    state = torch.load(weights, map_location="cpu", weights_only=True)
    got = fingerprint(state)
    if got != meta.get("fingerprint"):
        raise ValueError(
            f"{model_dir}: weights fingerprint {got[:12]} differs from {META_FILE} "
            f"({str(meta.get('fingerprint'))[:12]}); the folder was modified, re-export the model"
        )
    net = VSearchNet(NetConfig.from_dict(meta["config"]))
    net.load_state_dict(state)
    return net.to(device).eval(), meta


class ServingModule(nn.Module):
    """The exported signature: ``float[B, 3, S, S]`` pixels in [0, 1] → a tuple of tensors.

    Why a tuple in :data:`OUTPUT_NAMES` order: exported programs and MLflow signatures handle
    flat outputs most portably; category probabilities (not logits) are what the fusion with
    the kNN vote needs.
    """

    def __init__(self, net: VSearchNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net.encode(images)
        probs = torch.softmax(out["category_logits"], dim=1)
        return out["boxes"], out["box_scores"], probs, out["embedding"], out["hash_logits"]


def input_example(config: NetConfig, batch: int = EXAMPLE_BATCH, seed: int = 0) -> np.ndarray:
    """A deterministic ``float32[batch, 3, S, S]`` example for signatures (batch >= 2)."""
    if batch < EXAMPLE_BATCH:
        raise ValueError(f"input examples need batch >= {EXAMPLE_BATCH} (got {batch})")
    rng = np.random.default_rng(seed)
    side = config.input_size
    return rng.random((batch, 3, side, side), dtype=np.float32)


def export_program(net: VSearchNet, path: Path) -> Path:
    """``torch.export`` the serving signature with a dynamic batch dimension; returns the path."""
    module = ServingModule(net.cpu().eval())
    example = torch.from_numpy(input_example(net.config))
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def mlflow_signature(net: VSearchNet) -> tuple[Any, np.ndarray]:
    """MLflow ``ModelSignature`` and the input example (batch 2) for logging the model."""
    from mlflow.models import infer_signature

    example = input_example(net.config)
    with torch.inference_mode():
        outs = ServingModule(net.cpu().eval())(torch.from_numpy(example))
    return infer_signature(
        example, {k: v.numpy() for k, v in zip(OUTPUT_NAMES, outs, strict=True)}
    ), example


@dataclass(frozen=True)
class ProposalKnobs:
    """How many candidate boxes to propose per photo and how they are pruned
    (:func:`vsearch.model.heads.decode_proposals`)."""

    k: int
    iou_threshold: float
    min_score: float


def to_float(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` pixels → ``float`` in [0, 1]; float input passes through."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


@torch.inference_mode()
def embed_images(
    net: VSearchNet,
    images: torch.Tensor,
    boxes: torch.Tensor | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
    proposals: ProposalKnobs | None = None,
    choice: torch.Tensor | None = None,
    second_look: float | None = None,
) -> dict[str, np.ndarray]:
    """Run the serving path over many photos.

    Args:
        net: the network (put in eval mode here).
        images: ``uint8`` or ``float[N, 3, S, S]``.
        boxes: optional normalised xyxy ``[N, 4]`` to crop instead of detecting; with
            ``proposals``, all-NaN rows are detected.
        batch_size: photos per forward pass.
        device: where to compute.
        on_batch: called with the number of photos done (progress bars).
        proposals: also propose candidate boxes (:meth:`VSearchNet.propose`) and describe the
            chosen one; the same single pass over the localizer as detecting.
        choice: ``int64[N]`` candidate index described per photo (default 0, the most
            confident, which is ``detect``'s box); ignored where ``boxes`` gives a box.
        second_look: also describe the box :meth:`VSearchNet.look_inside` finds in each
            described box grown by this share per side (given boxes included); ``None``: not.

    Returns:
        numpy arrays: ``boxes`` ``[N, 4]``, ``box_scores`` ``[N]``, ``category_probs``,
        ``embedding`` ``float32[N, d]``, ``hash_logits`` and packed ``codes`` ``uint8[N, bits/8]``;
        with ``proposals`` also ``candidates`` ``[N, k, 4]`` and ``candidate_scores`` ``[N, k]``
        (NaN past the last surviving one) and ``chosen`` ``int64[N]`` (-1: a given box);
        with ``second_look`` the same for the second look, each name prefixed :data:`SECOND`.

    Raises:
        NoSuchCandidate: a ``choice`` past a photo's last surviving candidate.
    """
    from vsearch.index.codes import pack_signs

    net = net.to(device).eval()
    names = OUTPUT_NAMES + (("candidates", "candidate_scores", "chosen") if proposals else ())
    if second_look is not None:
        names += tuple(SECOND + k for k in OUTPUT_NAMES)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for start in range(0, images.shape[0], batch_size):
        x = to_float(images[start : start + batch_size]).to(device)
        b = None if boxes is None else boxes[start : start + batch_size].to(device)
        if proposals is None:
            out = net.encode(x, b, second_look)
        else:
            c = None if choice is None else choice[start : start + batch_size]
            out = _encode_chosen(net, x, b, proposals, c, start, second_look)
            for key in ("candidates", "candidate_scores", "chosen"):
                parts[key].append(out[key].cpu().numpy())
        for prefix in ("", SECOND) if second_look is not None else ("",):
            _collect(parts, out, prefix)
        if on_batch is not None:
            on_batch(min(start + batch_size, images.shape[0]))
    res = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in parts.items()}
    res["codes"] = pack_signs(res["hash_logits"])
    if second_look is not None:
        res[SECOND + "codes"] = pack_signs(res[SECOND + "hash_logits"])
    return res


def _collect(
    parts: dict[str, list[np.ndarray]], out: dict[str, torch.Tensor], prefix: str = ""
) -> None:
    """Append one batch's ``prefix``-ed outputs under :data:`OUTPUT_NAMES` (numpy; category
    logits become probabilities)."""
    for key in ("boxes", "box_scores", "embedding", "hash_logits"):
        parts[prefix + key].append(out[prefix + key].cpu().numpy())
    probs = torch.softmax(out[prefix + "category_logits"], 1)
    parts[prefix + "category_probs"].append(probs.cpu().numpy())


def _encode_chosen(
    net: VSearchNet,
    x: torch.Tensor,
    boxes: torch.Tensor | None,
    knobs: ProposalKnobs,
    choice: torch.Tensor | None,
    offset: int,
    second_look: float | None = None,
) -> dict[str, torch.Tensor]:
    """Propose candidates, then describe each photo's chosen one (or its given box)."""
    cand, cand_scores = net.propose(x, knobs.k, knobs.iou_threshold, knobs.min_score)
    n = x.shape[0]
    pick = torch.zeros(n, dtype=torch.long, device=x.device)
    if choice is not None:
        pick = choice.to(device=x.device, dtype=torch.long)
    given = torch.zeros(n, dtype=torch.bool, device=x.device)
    if boxes is not None:
        given = ~torch.isnan(boxes).all(dim=1)
    rows = torch.arange(n, device=x.device)
    in_range = (pick >= 0) & (pick < knobs.k)
    score = torch.full((n,), float("nan"), dtype=x.dtype, device=x.device)
    score[in_range] = cand_scores[rows[in_range], pick[in_range]]
    bad = ~given & torch.isnan(score)
    if bad.any():
        counts = (~torch.isnan(cand_scores)).sum(dim=1)
        idx = bad.nonzero().squeeze(1).tolist()
        raise NoSuchCandidate(
            [offset + i for i in idx], [int(pick[i]) for i in idx], [int(counts[i]) for i in idx]
        )
    chosen_boxes = torch.zeros((n, 4), dtype=x.dtype, device=x.device)
    chosen_boxes[~given] = cand[rows[~given], pick[~given]]
    if boxes is not None:
        chosen_boxes[given] = boxes[given].to(x.dtype)
    out = net.encode(x, chosen_boxes, second_look)
    out["box_scores"] = torch.where(given, torch.ones_like(score), score)
    out["candidates"] = cand
    out["candidate_scores"] = cand_scores
    out["chosen"] = torch.where(given, torch.full_like(pick, -1), pick)
    return out


def embedding_set(
    net: VSearchNet,
    item_ids: Sequence[str],
    categories: Sequence[str],
    images: torch.Tensor,
    meta: dict[str, Any],
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> Any:
    """The index's input (:class:`vsearch.index.embeddings.EmbeddingSet`) for catalog photos.

    Catalog photos go through the same detect → crop → embed path as queries, so both sides
    of the search see the product the same way.
    """
    from vsearch.index.embeddings import EmbeddingSet, ModelInfo

    out = embed_images(net, images, batch_size=batch_size, device=device)
    info = ModelInfo(
        name=str(meta.get("name", "vsearch-net")),
        version=str(meta.get("version", "0")),
        fingerprint=str(meta["fingerprint"]),
    )
    return EmbeddingSet(
        np.asarray(list(item_ids), dtype=object),
        np.asarray(list(categories), dtype=object),
        out["codes"],
        out["embedding"].astype(np.float32),
        info,
    )
