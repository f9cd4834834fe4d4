"""Training and inference throughput of the network chosen in params.yaml (and an alternative).

    python bench/train_bench.py                       # chosen config vs resnet18 reference
    python bench/train_bench.py --alt model.stem_stride=4 model.crop_size=128

Figures (one JSON object per line, as docs/contributing.md#measuring asks):

* ``train_images_per_s`` — full training steps (batch synthesis on tensors, frame pass, crop
  pass, joint loss, backward, optimiser), images per second;
* ``peak_rss_mb`` — the process's peak resident memory after the training steps;
* ``infer_b1_ms`` — serving path (detect → crop → embed → hash) for one photo, p50;
* ``infer_b32_images_per_s`` — the same at batch 32.

Each figure is the median of ``--repeats`` (min beside it). A fixed reference (torchvision
resnet18 at 128 px, fwd+bwd at batch 32: the yardstick row of docs/measurements.md) is measured
in the same run, and every figure of a config carries its ratio to that config's reference, so
runs on a busy machine stay comparable: read ratios, not absolute numbers. Data is synthetic
(studio-like shots drawn here), so the bench needs no drop. Nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vsearch.settings import Settings, load_settings, with_overrides

REFERENCE_BATCH = 32
REFERENCE_SIZE = 128
SYNTHETIC_LISTINGS = 256
SYNTHETIC_QUERIES = 64
SYNTHETIC_CATEGORIES = 8


def synthetic_data(size: int, seed: int = 0) -> Any:
    """A :class:`TrainData` of drawn studio shots (coloured blocks on light backdrops)."""
    from vsearch.training.augment import studio_matte
    from vsearch.training.data import TrainData

    rng = np.random.default_rng(seed)
    n, q = SYNTHETIC_LISTINGS, SYNTHETIC_QUERIES
    imgs = np.full((n, 3, size, size), 235, dtype=np.uint8)
    for i in range(n):
        w, h = rng.integers(size // 3, int(size * 0.8), 2)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        imgs[i, :, y : y + h, x : x + w] = rng.integers(0, 200, (3, 1, 1))
    cat = torch.from_numpy(imgs)
    classes = np.arange(n) // 2
    queries = torch.from_numpy(rng.integers(0, 255, (q, 3, size, size), dtype=np.uint8))
    return TrainData(
        categories=[f"c{i}" for i in range(SYNTHETIC_CATEGORIES)],
        classes=[f"v{i}" for i in range(classes.max() + 1)],
        item_ids=np.array([f"i{i}" for i in range(n)]),
        item_category=classes % SYNTHETIC_CATEGORIES,
        item_class=classes,
        catalog_images=cat,
        matte=studio_matte(cat, 0.1),
        query_ids=np.array([f"q{i}" for i in range(q)]),
        query_category=np.arange(q) % SYNTHETIC_CATEGORIES,
        query_class=np.arange(q) % (classes.max() + 1),
        query_images=queries,
        query_negatives=[np.array([i], dtype=np.int64) for i in range(q)],
        val_query_ids=np.array([], dtype=object),
        val_query_class=np.array([], dtype=np.int64),
        val_query_images=queries[:0],
    )


def _timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    fn()  # warm-up (allocator, oneDNN kernels)
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def reference_images_per_s(repeats: int) -> float:
    """resnet18 @128 px fwd+bwd at batch 32 (the yardstick of docs/measurements.md)."""
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.rand(REFERENCE_BATCH, 3, REFERENCE_SIZE, REFERENCE_SIZE)
    y = torch.randint(0, 1000, (REFERENCE_BATCH,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return REFERENCE_BATCH / statistics.median(_timed(step, repeats))


def measure(settings: Settings, label: str, repeats: int, steps: int) -> list[dict[str, Any]]:
    """All figures of one config, each with its ratio to the reference measured just before."""
    from vsearch.model.export import embed_images
    from vsearch.training.loop import _Trainer

    torch.set_num_threads(settings.project.threads)
    ref = reference_images_per_s(repeats)
    data = synthetic_data(settings.model.input_size)
    trainer = _Trainer(settings, data, torch.device("cpu"))
    batch = settings.train.batch_size

    def train_steps() -> None:
        for _ in range(steps):
            trainer.train_step(0.5)

    train_t = _timed(train_steps, repeats)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    net = trainer.net.eval()
    side = settings.model.input_size
    one = torch.rand(1, 3, side, side)
    many = (torch.rand(32, 3, side, side) * 255).to(torch.uint8)
    b1 = _timed(lambda: embed_images(net, one, batch_size=1), max(repeats, 5))
    b32 = _timed(lambda: embed_images(net, many, batch_size=32), repeats)
    params = sum(p.numel() for p in net.parameters())
    common = {
        "config": label,
        "backbone": settings.model.backbone,
        "params_m": round(params / 1e6, 3),
        "input": {
            "frame": settings.model.frame_size,
            "crop": settings.model.crop_size,
            "photo": side,
            "stem_stride": settings.model.stem_stride,
            "localizer_widths": settings.model.localizer_widths,
        },
        "threads": settings.project.threads,
        "reference": "resnet18@128 fwd+bwd b32",
        "reference_images_per_s": round(ref, 2),
    }
    train_rate = steps * batch / np.array(train_t)
    b32_rate = 32 / np.array(b32)
    rows = [
        ("train_images_per_s", float(np.median(train_rate)), float(train_rate.max()), "img/s"),
        ("infer_b32_images_per_s", float(np.median(b32_rate)), float(b32_rate.max()), "img/s"),
        ("infer_b1_ms", 1000 * statistics.median(b1), 1000 * min(b1), "ms"),
    ]
    out = [
        {
            "name": name,
            "value": round(med, 2),
            "best": round(best, 2),
            "unit": unit,
            "ratio_to_reference": round((med / ref) if unit == "img/s" else (med / 1000) * ref, 3),
            **common,
        }
        for name, med, best, unit in rows
    ]
    out.append({"name": "peak_rss_mb", "value": round(rss_mb, 1), "unit": "MB", **common})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--alt", nargs="*", default=None, help="KEY=VALUE overrides of an alternative")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="training steps per timed repeat")
    args = ap.parse_args(argv)
    settings = load_settings(args.params)
    configs = [("chosen", settings)]
    if args.alt:
        configs.append((" ".join(args.alt), with_overrides(settings, args.alt)))
    results: dict[str, dict[str, float]] = {}
    for label, s in configs:
        for row in measure(s, label, args.repeats, args.steps):
            sys.stdout.write(json.dumps(row) + "\n")
            sys.stdout.flush()
            results.setdefault(row["name"], {})[label] = row.get("ratio_to_reference", row["value"])
    if args.alt:  # alternative vs chosen, each normalised by its own reference measurement
        alt = configs[1][0]
        for name, by in results.items():
            if by.get("chosen"):
                sys.stdout.write(
                    json.dumps(
                        {
                            "name": f"{name}_alt_vs_chosen",
                            "value": round(by[alt] / by["chosen"], 3),
                            "unit": "ratio",
                            "alt": alt,
                        }
                    )
                    + "\n"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
