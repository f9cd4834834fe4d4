"""Detection that generalises: box IoU and recall@10 by how the query's box is drawn, before vs
after the joint detection training changes, same shop, same seed, same steps.

    python -m bench.detect_bench                      # ~5 min on 2 busy cores
    python -m bench.detect_bench --steps 200 --products 48   # quicker

(run from the repository root: it borrows the tests' foreign-shop generator, tests/foreign.py,
and the kit's tiny network settings.)

What it does: writes a small foreign shop (flat badges, not the demo world), mines its clicks,
and trains two networks on the same click labels for ``--steps`` steps:

* ``before``: training as it was: real-photo backgrounds of the original training half only,
  crops at jittered true boxes, predicted-box crops detached;
* ``after``: ``params.yaml`` as committed (procedural and clutter backgrounds, every further
  bundled photo, loose and whole-frame crops, the crop's loss reaching predicted boxes).

Held-out queries: fresh studio shots of the shop's products (never in a drop), cut out and
pasted at ``--scale`` of the frame side onto the *query* half of the photos (backgrounds no
training run saw), with the photometric changes of training. A query is a hit when a listing of
its product is among the 10 nearest listings (float cosine; the catalog goes through detect →
crop → embed as served). Rows: box IoU of the detected box, then recall@10 with (a) the
detected box, (b) the true box, (c) the true box grown 25 % per side, (d) the full frame, and
for the plain studio shots themselves (e) the full frame, (f) the tight box.

Output: a table on stdout and one JSON object per line after it. Nothing here asserts. The
tiny network's figures swing a lot between seeds (``--seed``): compare before and after within
one seed, over several seeds, never one run against a figure of another day.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_iou

from tests import foreign, kit
from vsearch.assets import photos
from vsearch.mining.stage import mine_drop
from vsearch.model.export import embed_images, load_model
from vsearch.model.net import grow_boxes
from vsearch.settings import Settings, with_overrides
from vsearch.training.augment import SceneSynthesizer, load_background_bank, studio_matte
from vsearch.training.loop import train
from vsearch.training.stage import choose_labels

FULL = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
LOOSE_GROW = 0.25
K = 10
# the training half before this change (further bundled photos were added to it)
ORIGINAL_TRAINING = (
    photos.TRAINING_PHOTOS - set(photos.EXTRA_SKIMAGE_PHOTOS) - set(photos.MATPLOTLIB_PHOTOS)
)


def _before(s: Settings) -> Settings:
    b = s.model_copy(deep=True)
    a = b.train.augment
    a.procedural_share = a.clutter_share = 0.0
    a.box_loose_prob = a.studio_full_frame_prob = 0.0
    b.train.predicted_box_grad_share = 0.0
    return b


def _train(name: str, s: Settings, data: Any, out: Path, steps: int, bank: frozenset) -> Path:
    photos.BANKS["training"] = bank
    photos.photo_bank.cache_clear()
    try:
        t0 = time.perf_counter()
        res = train(s, data, out / name, max_steps=steps, progress=False, write_embeddings=False)
        print(f"# {name}: {res.steps} steps in {time.perf_counter() - t0:.0f}s", flush=True)
    finally:
        photos.BANKS["training"] = photos.TRAINING_PHOTOS
        photos.photo_bank.cache_clear()
    return res.model_dir


def held_out(shop: foreign.ForeignShop, s: Settings, per_product: int, scale: tuple, seed: int):
    """Fresh studio shots (uint8), scenes on query-half photos (float), true boxes, products."""
    from PIL import Image

    size = s.model.input_size
    rng = np.random.default_rng(seed)
    products = sorted({int(p.removeprefix("p")) for p in shop.item_product.values()})
    shots, truth = [], []
    for p in products:
        for _ in range(per_product):
            img = foreign._badge(p, rng, shopper=False).resize((size, size), Image.BILINEAR)
            shots.append(torch.from_numpy(np.array(img)).permute(2, 0, 1))
            truth.append(f"p{p}")
    studio = torch.stack(shots)
    matte = studio_matte(studio, s.train.augment.matte_threshold)
    a = s.train.augment.model_copy(update={"scale": scale, "procedural_share": 0.0})
    synth = SceneSynthesizer(a, size, load_background_bank(a.background_side, "queries"))
    g = torch.Generator().manual_seed(seed)
    sc = synth.scenes(studio.float() / 255, matte.alpha.float() / 255, matte.boxes, g)
    return studio, sc.images, sc.boxes, matte.boxes / size, np.array(truth)


def measure(model_dir: Path, data: Any, shop: foreign.ForeignShop, q: tuple) -> dict[str, float]:
    studio, scenes, boxes, studio_boxes, truth = q
    net, _ = load_model(model_dir)
    cat = embed_images(net, data.catalog_images)
    item_product = np.array([shop.item_product[str(i)] for i in data.item_ids])

    def recall(images: torch.Tensor, b: torch.Tensor | None) -> tuple[float, np.ndarray]:
        out = embed_images(net, images, b)
        top = np.argsort(-(out["embedding"] @ cat["embedding"].T), axis=1)[:, :K]
        return float((item_product[top] == truth[:, None]).any(axis=1).mean()), out["boxes"]

    n = len(truth)
    det, pred = recall(scenes, None)
    iou = box_iou(torch.from_numpy(pred), boxes).diagonal()
    return {
        "box_iou_mean": float(iou.mean()),
        "iou_below_0.3": float((iou < 0.3).float().mean()),
        "(a) detected box": det,
        "(b) true box": recall(scenes, boxes)[0],
        f"(c) true box +{LOOSE_GROW:.0%}": recall(scenes, grow_boxes(boxes, LOOSE_GROW))[0],
        "(d) full frame": recall(scenes, FULL.expand(n, 4))[0],
        "(e) studio, full frame": recall(studio, FULL.expand(n, 4))[0],
        "(f) studio, tight box": recall(studio, studio_boxes)[0],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--products", type=int, default=72)
    ap.add_argument("--per-product", type=int, default=2, help="held-out queries per product")
    ap.add_argument("--scale", type=float, nargs=2, default=(0.25, 0.5))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="overrides of the 'after' settings, e.g. train.augment.scale=[0.2,0.85]",
    )
    ap.add_argument("--runs", nargs="+", default=["before", "after"], choices=["before", "after"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    s = kit.tiny_settings(epochs=1, steps_per_epoch=args.steps, val_share=0.1, warmup_steps=10)
    s.project.seed = kit.TINY_SEED + args.seed
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        drop = root / "shop"
        shop = foreign.write_snapshot(
            drop,
            drop_id="shop",
            products=args.products,
            queries=4 * args.products,
            start=datetime.now(UTC) - timedelta(3),
        )
        mine_drop(drop, root / "mining", s.mining, seed=s.project.seed, split=s.split)
        data = kit.train_data(drop, choose_labels(drop, root / "mining"), s)
        q = held_out(shop, s, args.per_product, tuple(args.scale), seed=1000 + args.seed)
        runs = {
            "before": (_before(s), frozenset(ORIGINAL_TRAINING)),
            "after": (with_overrides(s, args.set), photos.TRAINING_PHOTOS),
        }
        rows = {}
        for name in args.runs:
            cfg, bank = runs[name]
            rows[name] = measure(_train(name, cfg, data, root, args.steps, bank), data, shop, q)
    print(f"\n{len(q[4])} held-out queries, product at {args.scale} of the frame side")
    print(f"{'metric':28s}" + "".join(f" {name:>8s}" for name in rows))
    for key in next(iter(rows.values())):
        print(f"{key:28s}" + "".join(f" {row[key]:8.3f}" for row in rows.values()))
    for name, row in rows.items():
        print(json.dumps({"run": name, "steps": args.steps, "set": args.set, **row}))


if __name__ == "__main__":
    main()
