"""The training loop: joint detection + embedding + hash training within a wall-clock budget.

Why a time budget rather than only epochs: on a 2-core CPU the demo run must end in 10 minutes
whatever else the machine is doing, so the learning-rate schedule follows the *larger* of the
step progress and the time progress, and the loop stops at the budget with a finished cosine
decay instead of being cut mid-schedule. Without a budget the run is step-based and bit-for-bit
repeatable for a seed.

Each step (see :class:`vsearch.training.data.BatchSampler` for what a batch holds):

1. listings become synthetic real shots or stay clean studio shots (boxes known), queries stay
   as photographed (boxes unknown);
2. the frame pass predicts boxes; the box loss trains it on the labelled slots, and its
   (detached) prediction tells where to crop the queries;
3. labelled slots are cropped at a jittered or loose true box (studio shots sometimes at the
   whole frame), or at the predicted box; for a share of those, through a differentiable crop,
   so the crop's losses also move the box (joint detection + embedding learning);
4. the crop pass embeds every slot; category, proxy, pair, hash and quantisation losses train it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_iou

from vsearch.fsio import atomic_path
from vsearch.model.export import embed_images, save_model
from vsearch.model.heads import decode_boxes
from vsearch.model.net import NetConfig, VSearchNet
from vsearch.settings import Settings
from vsearch.trained import (
    CHECKPOINT_FILE,
    EMBEDDINGS_DIR,
    MODEL_DIR,
    write_history,
)
from vsearch.training.augment import (
    SceneSynthesizer,
    load_background_bank,
    training_crop_boxes,
)
from vsearch.training.data import BatchSampler, TrainData
from vsearch.training.losses import JointLoss, LossInputs
from vsearch.training.warm import WarmStart, apply_warm_start, scratch

log = logging.getLogger(__name__)

HASH_RERANK_DEPTH = 100  # Hamming candidates re-scored with floats in the run's own check
EVAL_BATCH = 128


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        checkpoint: the last checkpoint (resume from it).
        model_dir: the exported model folder (:func:`vsearch.model.export.save_model`).
        fingerprint: sha256 of the exported weights.
        epochs: per-epoch metrics (mean losses, images/s, box IoU on synthetic scenes, ...).
        metrics: final metrics (the run's own click-labelled recall check, totals).
        steps: optimiser steps taken in total (over resumes).
        images_seen: training images (slots) processed in total.
        seconds: training wall time in total (over resumes).
        stopped_by_budget: the time budget ended the run before the last epoch.
        embeddings_dir: the catalog's ``EmbeddingSet`` folder, when written.
    """

    checkpoint: Path
    model_dir: Path
    fingerprint: str
    epochs: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    images_seen: int = 0
    seconds: float = 0.0
    stopped_by_budget: bool = False
    embeddings_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checkpoint"], d["model_dir"] = str(self.checkpoint), str(self.model_dir)
        d["embeddings_dir"] = str(self.embeddings_dir) if self.embeddings_dir else None
        return d


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("project.device is 'cuda' but no CUDA device is available; use 'auto'")
    return torch.device(name)


def lr_factor(step: int, progress: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay over ``progress`` in [0, 1]."""
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0


class _Trainer:
    """State of one run (network, loss, optimiser, generators) and its step."""

    def __init__(
        self,
        settings: Settings,
        data: TrainData,
        device: torch.device,
        warm: WarmStart | str = "",
    ) -> None:
        t = settings.train
        self.settings, self.data, self.device = settings, data, device
        seed = settings.project.seed
        torch.manual_seed(seed)
        self.config = NetConfig.from_settings(settings.model, data.categories)
        self.net = VSearchNet(self.config)
        self.warm_start = apply_warm_start(self.net, warm or scratch("no model to start from"))
        is_warm = not self.warm_start.startswith(scratch(""))
        log.info("warm start: %s", self.warm_start)
        self.net = self.net.to(device)
        self.net.trunk_dtype = torch.bfloat16 if t.precision == "bf16" else None
        self.loss = JointLoss(t.loss, data.num_classes, self.config.embedding_dim).to(device)
        lr = t.lr * t.warm_lr_mult if is_warm else t.lr
        self.warmup_steps = (
            t.warm_warmup_steps if is_warm and t.warm_warmup_steps is not None else t.warmup_steps
        )
        self.optim = torch.optim.AdamW(
            [
                {"params": self.net.parameters(), "lr": lr, "base_lr": lr},
                {
                    "params": self.loss.parameters(),
                    "lr": lr * t.loss.proxy_lr_mult,
                    "base_lr": lr * t.loss.proxy_lr_mult,
                },
            ],
            weight_decay=t.weight_decay,
            fused=True,  # one kernel for all parameters: per-tensor Adam ops dominate on CPU
        )
        self.synth = SceneSynthesizer(
            t.augment, settings.model.input_size, load_background_bank(t.augment.background_side)
        )
        self.sampler = BatchSampler(
            data, t.batch_size, t.per_class, t.query_share, t.augment.studio_share, t.negative_share
        )
        self.np_rng = np.random.default_rng(seed)
        self.gen = torch.Generator().manual_seed(seed + 1)
        self.step = 0

    # -- checkpoint ----------------------------------------------------------------------------
    def state(self, epoch: int, elapsed: float, images: int, history: list) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit-for-bit (weights, optimiser, RNGs)."""
        plain = _plain(
            {
                "config": self.config.to_dict(),
                "classes": [str(c) for c in self.data.classes],
                "step": self.step,
                "epoch": epoch,
                "elapsed": elapsed,
                "images": images,
                "history": history,
                "np_rng": self.np_rng.bit_generator.state,
                "queue": list(self.sampler._queue),
                "warm_start": self.warm_start,
                "warmup_steps": self.warmup_steps,
            }
        )
        return {
            "net": self.net.state_dict(),
            "loss": self.loss.state_dict(),
            "optim": self.optim.state_dict(),
            "gen": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            **plain,  # plain Python values only: the file loads with weights_only=True
        }

    def load(self, ckpt: dict[str, Any]) -> None:
        """Restore :meth:`state`; refuses a checkpoint of other data or another config."""
        if ckpt["classes"] != [str(c) for c in self.data.classes] or ckpt["config"] != _plain(
            self.config.to_dict()
        ):
            raise ValueError(
                "checkpoint was made for other data or another model config; "
                "train into a fresh --out folder or drop --resume"
            )
        self.net.load_state_dict(ckpt["net"])
        self.loss.load_state_dict(ckpt["loss"])
        self.optim.load_state_dict(ckpt["optim"])
        self.step = int(ckpt["step"])
        self.np_rng.bit_generator.state = ckpt["np_rng"]
        self.gen.set_state(ckpt["gen"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.sampler._queue = list(ckpt["queue"])
        self.warm_start = str(ckpt.get("warm_start", self.warm_start))
        self.warmup_steps = int(ckpt.get("warmup_steps", self.warmup_steps))

    # -- one step ------------------------------------------------------------------------------
    def _crops(
        self,
        lab_imgs: torch.Tensor,
        lab_boxes: torch.Tensor,
        localized: tuple[torch.Tensor, torch.Tensor],
        q_imgs: torch.Tensor,
        n_scene: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The crop of every slot (labelled slots, then queries) and the labelled slots'
        (detached) predicted boxes.

        Labelled slots are cut at a jittered, loose or whole-frame true box
        (:func:`training_crop_boxes`) or, for ``predicted_box_share``, at the predicted box;
        a ``predicted_box_grad_share`` of those, and a ``query_box_grad_share`` of the queries
        (whose only box is the predicted one), through the differentiable crop, so the crop's
        losses reach the box head and its trunk: the paper's joint detection + embedding
        training, where clicks on real shopper photos teach the detector too.
        """
        t, g, dev = self.settings.train, self.gen, self.device
        n, n_q = lab_imgs.shape[0], q_imgs.shape[0]
        pred_grad, _ = decode_boxes(*localized)  # differentiable w.r.t. the cell boxes
        q_grad_on = t.query_box_grad_share > 0 and n_q > 0
        if q_grad_on:
            q_pred_grad, _ = decode_boxes(*self.net.localize(self.net.to_frame(q_imgs)))
        else:
            with torch.no_grad():
                q_pred_grad = self.net.detect(q_imgs)[0] if n_q else lab_boxes[:0]
        studio = torch.arange(n) >= n_scene
        crop_boxes = training_crop_boxes(lab_boxes.cpu(), studio, t.augment, g).to(dev)
        use_pred = torch.rand(n, generator=g) < t.predicted_box_share
        grad = use_pred & (torch.rand(n, generator=g) < t.predicted_box_grad_share)
        q_grad = torch.zeros(n_q, dtype=torch.bool)
        if q_grad_on:
            q_grad = torch.rand(n_q, generator=g) < t.query_box_grad_share
        crop_boxes = torch.where(use_pred.to(dev).unsqueeze(1), pred_grad.detach(), crop_boxes)
        all_imgs = torch.cat((lab_imgs, q_imgs))
        crops = self.net.crop(all_imgs, torch.cat((crop_boxes, q_pred_grad.detach())))
        rows = torch.cat((grad, q_grad)).nonzero().flatten().to(dev)
        if rows.numel():
            boxes = torch.cat((pred_grad, q_pred_grad))[rows]
            # same boxes, gradient scaled: summed over every crop pixel it would swamp the box
            # losses and the global gradient clip (measured: localizer gradient 5 -> 240)
            scale = t.crop_box_grad_scale
            boxes = boxes.detach() + scale * (boxes - boxes.detach())
            crops = crops.index_put(
                (rows,), self.net.crop(all_imgs[rows], boxes, differentiable=True)
            )
        return crops, pred_grad.detach()

    def train_step(self, progress: float) -> dict[str, float]:
        """One optimiser step at schedule ``progress`` in [0, 1]; returns the step's metrics."""
        t, d, dev = self.settings.train, self.data, self.device
        b = self.sampler.sample(self.np_rng)
        g = self.gen
        labelled, boxes = [], []
        if len(b.scene_items):
            idx = torch.from_numpy(b.scene_items)
            sc = self.synth.scenes(
                _to_float(d.catalog_images[idx]),
                _to_float(d.matte.alpha[idx]),
                d.matte.boxes[idx],
                g,
            )
            labelled.append(sc.images)
            boxes.append(sc.boxes)
        if len(b.studio_items):
            idx = torch.from_numpy(b.studio_items)
            st = self.synth.studio(_to_float(d.catalog_images[idx]), d.matte.boxes[idx], g)
            labelled.append(st.images)
            boxes.append(st.boxes)
        lab_imgs = torch.cat(labelled).to(dev)
        lab_boxes = torch.cat(boxes).to(dev)
        items = np.concatenate((b.scene_items, b.studio_items))
        q = torch.from_numpy(b.queries)
        q_imgs = _to_float(d.query_images[q])
        flip = torch.rand(len(q), generator=g) < t.augment.flip_prob
        q_imgs[flip] = q_imgs[flip].flip(-1)
        q_imgs = q_imgs.to(dev)

        self.net.train()
        heat, cell_boxes = self.net.localize(self.net.to_frame(lab_imgs))
        crops, pred_lab = self._crops(
            lab_imgs, lab_boxes, (heat, cell_boxes), q_imgs, len(b.scene_items)
        )
        out = self.net.describe(crops)
        classes = np.concatenate((d.item_class[items], d.query_class[b.queries]))
        cats = np.concatenate((d.item_category[items], d.query_category[b.queries]))
        weights = np.concatenate((np.ones(len(items)), d.query_weight[b.queries]))
        hard_neg = np.stack((b.negative_pairs[:, 0] + len(items), b.negative_pairs[:, 1]), 1)
        terms = self.loss(
            LossInputs(
                embedding=out["embedding"],
                hash_logits=out["hash_logits"],
                category_logits=out["category_logits"],
                classes=torch.from_numpy(classes).to(dev),
                categories=torch.from_numpy(cats).to(dev),
                heat=heat,
                cell_boxes=cell_boxes,
                boxes=lab_boxes,
                weights=torch.from_numpy(weights).float().to(dev),
                hard_negatives=torch.from_numpy(hard_neg).to(dev),
            )
        )
        factor = lr_factor(self.step, progress, self.warmup_steps)
        for group in self.optim.param_groups:
            group["lr"] = group["base_lr"] * factor
        self.optim.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(
            list(self.net.parameters()) + list(self.loss.parameters()), t.grad_clip
        )
        self.optim.step()
        self.step += 1
        metrics = {k: float(v.detach()) for k, v in terms.items()}
        metrics["box_iou"] = float(box_iou(pred_lab, lab_boxes).diagonal().mean())
        metrics["lr"] = self.optim.param_groups[0]["base_lr"] * factor
        metrics["images"] = float(len(items) + len(q))
        return metrics


def click_recall(
    net: VSearchNet,
    data: TrainData,
    k: int,
    device: torch.device,
    catalog: dict[str, np.ndarray] | None = None,
    batch: int = EVAL_BATCH,
) -> dict[str, float]:
    """The run's own check on held-aside click-labelled queries (no ground truth involved).

    A query is a hit when a listing of its clicked virtual ID is among the ``k`` nearest
    listings (float cosine), and, for the binary path, among the ``k`` best after a Hamming
    search of depth :data:`HASH_RERANK_DEPTH` re-ranked by floats.

    Args:
        catalog: the catalog's :func:`embed_images` output when already computed.
    """
    from vsearch.index.codes import hamming

    if len(data.val_query_ids) == 0:
        return {}
    cat = catalog or embed_images(net, data.catalog_images, batch_size=batch, device=device)
    qry = embed_images(net, data.val_query_images, batch_size=batch, device=device)
    sims = qry["embedding"] @ cat["embedding"].T
    top = np.argsort(-sims, axis=1)[:, :k]
    hits = (data.item_class[top] == data.val_query_class[:, None]).any(axis=1)
    ham = hamming(qry["codes"], cat["codes"])
    depth = min(HASH_RERANK_DEPTH, ham.shape[1])
    cand = np.argsort(ham, axis=1, kind="stable")[:, :depth]
    cand_sims = np.take_along_axis(sims, cand, axis=1)
    rerank = np.take_along_axis(cand, np.argsort(-cand_sims, axis=1)[:, :k], axis=1)
    hash_hits = (data.item_class[rerank] == data.val_query_class[:, None]).any(axis=1)
    return {
        f"val_click_recall@{k}": float(hits.mean()),
        f"val_click_hash_recall@{k}": float(hash_hits.mean()),
        "val_queries": len(hits),
    }


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python values, tuples into lists:
    what ``torch.load(weights_only=True)`` accepts besides tensors."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return value


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically and durably (temp file, fsync, rename, fsync the folder:
    :func:`vsearch.fsio.atomic_path`), so a crash leaves the previous one whole."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: tensors, state dicts and plain Python
    values only, so a tampered file cannot run code when a run resumes.

    Raises:
        ValueError: the file holds anything else (or is not a checkpoint).
    """
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ValueError(
            f"{path}: not a loadable training checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); train into a fresh --out "
            "folder or drop --resume"
        ) from None


def train(
    settings: Settings,
    data: TrainData,
    out_dir: Path,
    *,
    oracle: bool = False,
    resume: bool = False,
    time_budget_s: float | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    final_check: bool = True,
    write_embeddings: bool = True,
    on_epoch: Callable[[dict[str, float], int], None] | None = None,
    warm: WarmStart | str = "",
) -> TrainResult:
    """Train the network on ``data``; checkpoint every epoch; export the model at the end.

    Args:
        settings: all settings (``model``, ``train``, ``project.seed/device/threads``).
        data: from :func:`vsearch.training.data.build_train_data`.
        out_dir: gets ``checkpoint.pt``, ``history.json`` and ``model/``.
        oracle: the labels are true product ids (recorded with the run; must match ``data``).
        resume: continue from ``out_dir/checkpoint.pt`` (same data and config).
        time_budget_s: wall-clock budget over the whole run (resumes included); ``None`` uses
            ``train.time_budget_s`` (which may itself be ``None``: no budget).
        max_steps: stop after this many steps in total (tests, probes); the learning-rate
            schedule still plans for all epochs, so a resumed run continues it exactly.
        progress: show a progress bar (stderr).
        final_check: run :func:`click_recall` on the held-aside queries at the end.
        write_embeddings: write the catalog's ``EmbeddingSet`` (the index's input) to
            ``out_dir/embeddings`` with the exported model's fingerprint.
        on_epoch: called with each finished epoch's metrics row and its index (live tracking,
            e.g. :meth:`vsearch.tracking.tracker.TrainingTracker.log_epoch`).
        warm: weights to start from (:mod:`vsearch.training.warm`), or the ``scratch: <reason>``
            why there are none; recorded as the run's ``warm_start`` metric. A resumed run
            continues its checkpoint instead.

    Raises:
        ValueError: ``oracle`` disagrees with the data's label source, or a checkpoint does not
            fit.
    """
    if oracle != (data.label_source == "oracle"):
        raise ValueError(
            f"oracle={oracle} but the data's labels come from {data.label_source!r}; "
            "build oracle data with vsearch.training.data.oracle_labels"
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.project.threads)
    try:
        opts = _RunOptions(
            oracle,
            resume,
            time_budget_s,
            max_steps,
            progress,
            final_check,
            write_embeddings,
            on_epoch,
            warm,
        )
        return _train(settings, data, out_dir, opts)
    finally:
        torch.set_num_threads(threads)  # the caller's process keeps its own setting


@dataclass(frozen=True)
class _RunOptions:
    """The keyword options of :func:`train`, passed down as one value."""

    oracle: bool
    resume: bool
    time_budget_s: float | None
    max_steps: int | None
    progress: bool
    final_check: bool
    write_embeddings: bool
    on_epoch: Callable[[dict[str, float], int], None] | None = None
    warm: WarmStart | str = ""


def _train(settings: Settings, data: TrainData, out_dir: Path, opts: _RunOptions) -> TrainResult:
    """:func:`train` after the argument checks (thread count set by the caller)."""
    t = settings.train
    budget = t.time_budget_s if opts.time_budget_s is None else opts.time_budget_s
    max_steps = opts.max_steps
    device = resolve_device(settings.project.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / CHECKPOINT_FILE
    trainer = _Trainer(settings, data, device, opts.warm)
    catalog_slots = max(1, t.batch_size - trainer.sampler.n_query)
    # one pass over the listings per epoch; a small shop's epochs are longer, so that its
    # few hundred listings still get min_steps of optimisation (the time budget still rules)
    steps_per_epoch = t.steps_per_epoch or max(
        math.ceil(len(data.item_ids) / catalog_slots), math.ceil(t.min_steps / t.epochs)
    )
    total_steps = steps_per_epoch * t.epochs  # what the schedule plans for
    stop_at = total_steps if max_steps is None else min(total_steps, max_steps)

    history: list[dict[str, float]] = []
    start_epoch, elapsed, images = 0, 0.0, 0
    if opts.resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        trainer.load(ckpt)
        start_epoch, elapsed = int(ckpt["epoch"]) + 1, float(ckpt["elapsed"])
        images, history = int(ckpt["images"]), list(ckpt["history"])
        log.info("resumed from %s at epoch %d, step %d", ckpt_path, start_epoch, trainer.step)

    stopped = False
    bar = _progress(opts.progress, stop_at, trainer.step)
    began = time.perf_counter() - elapsed
    try:
        for epoch in range(start_epoch, t.epochs):
            sums: dict[str, float] = {}
            n = 0
            ep_start = time.perf_counter()
            for _ in range(steps_per_epoch):
                if trainer.step >= stop_at:
                    break
                now = time.perf_counter() - began
                if budget is not None and now >= budget:
                    stopped = True
                    break
                frac = trainer.step / total_steps
                prog = max(frac, now / budget) if budget else frac
                m = trainer.train_step(prog)
                images += int(m["images"])
                for key, v in m.items():
                    sums[key] = sums.get(key, 0.0) + v
                n += 1
                if bar is not None:
                    bar[0].update(
                        bar[1], advance=1, description=f"epoch {epoch} loss {m['total']:.3f}"
                    )
            if n:
                row = {k: v / n for k, v in sums.items() if k != "images"}
                ep_time = time.perf_counter() - ep_start
                row.update(epoch=epoch, steps=n, images_per_s=sums["images"] / max(ep_time, 1e-9))
                row["elapsed_s"] = time.perf_counter() - began
                history.append(row)
                log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
                if opts.on_epoch is not None:
                    opts.on_epoch(row, epoch)
                last = epoch == t.epochs - 1 or stopped or trainer.step >= stop_at
                if (epoch + 1) % t.checkpoint_every == 0 or last:
                    state = trainer.state(epoch, time.perf_counter() - began, images, history)
                    _save_checkpoint(ckpt_path, state)
            if stopped or trainer.step >= stop_at:
                break
    finally:
        if bar is not None:
            bar[0].stop()
    if not ckpt_path.is_file():  # no epoch finished (zero steps): still leave a checkpoint
        _save_checkpoint(ckpt_path, trainer.state(start_epoch - 1, elapsed, images, history))

    seconds = time.perf_counter() - began
    metrics: dict[str, Any] = {
        "steps": trainer.step,
        "images_seen": images,
        "train_seconds": seconds,
        "stopped_by_budget": stopped,
        "label_source": data.label_source,
        "warm_start": trainer.warm_start,
        **data.summary(),
    }
    trainer.net.trunk_dtype = None  # evaluate and export in float32, as served
    catalog = None
    if opts.write_embeddings or opts.final_check:
        catalog = embed_images(
            trainer.net, data.catalog_images, batch_size=EVAL_BATCH, device=device
        )
    if opts.final_check:
        metrics.update(click_recall(trainer.net, data, t.val_k, device, catalog))
    meta = {
        "name": settings.model.name,
        "oracle": opts.oracle,
        "seed": settings.project.seed,
        "steps": trainer.step,
        "classes": data.num_classes,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool)},
    }
    info = save_model(trainer.net.cpu(), out_dir / MODEL_DIR, meta)
    embeddings_dir = None
    if opts.write_embeddings and catalog is not None:
        embeddings_dir = _write_embeddings(out_dir / EMBEDDINGS_DIR, data, catalog, info)
    write_history(out_dir, history, metrics)
    return TrainResult(
        checkpoint=ckpt_path,
        model_dir=out_dir / MODEL_DIR,
        fingerprint=info["fingerprint"],
        epochs=history,
        metrics=metrics,
        steps=trainer.step,
        images_seen=images,
        seconds=seconds,
        stopped_by_budget=stopped,
        embeddings_dir=embeddings_dir,
    )


def _write_embeddings(
    folder: Path, data: TrainData, catalog: dict[str, np.ndarray], info: dict[str, Any]
) -> Path:
    """Save the catalog's codes and vectors as the index's ``EmbeddingSet`` folder."""
    from vsearch.index.embeddings import EmbeddingSet, ModelInfo

    model = ModelInfo(
        name=str(info.get("name", "vsearch-net")),
        version=str(info.get("version", "0")),
        fingerprint=str(info["fingerprint"]),
    )
    categories = np.asarray(data.categories, dtype=object)[data.item_category]
    emb = EmbeddingSet(
        data.item_ids.astype(object), categories, catalog["codes"], catalog["embedding"], model
    )
    return emb.save(folder)


def _progress(enabled: bool, total: int, done: int) -> tuple[Any, Any] | None:
    """A rich progress bar on stderr (``None`` when disabled)."""
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task("training", total=total, completed=done)
    bar.start()
    return bar, task
