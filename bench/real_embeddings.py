"""The index bench on real model embeddings: a shop's catalog grown by augmentation to ``--items``
listings, embedded by a trained model exactly as the catalog index is (detect → crop → embed →
hash), and its held-out query photos embedded as the service embeds uploads.

    make demo                                                  # a trained model and a drop
    python -m bench.real_embeddings --items 200000             # ~15-25 min on 2 cores
    python -m bench.index_bench --embeddings reports/bench/real_200000 --threads 1

Why: the synthetic generator of :mod:`vsearch.index.synthetic` decides how hard the data is for
each index (HNSW walks its manifold easily); the comparison that matters is on what the model
really produces, with its own hash head's codes.

How the catalog grows: every listing photo is kept as it is, then augmented copies are drawn
round-robin over the listings until ``--items`` (plus ``--fresh`` for the upsert bench) exist.
A copy is a random resized crop (a re-shot, re-framed listing), a flip and a photometric jitter;
with probability ``--variant-share`` its hue is also rotated by one of a few fixed angles, which
makes it a *colour variant*: a different product (its own product id), as shops list them. The
identical-product figure (``ident10``) follows these product ids; recall@10 is against exact
float search, so it needs none.

Output folder (read by ``bench/index_bench.py --embeddings``)::

    OUT/catalog/   the catalog (an :class:`~vsearch.index.embeddings.EmbeddingSet` folder)
    OUT/fresh/     listings kept out of the catalog (the bench upserts them)
    OUT/data.npz   product ids of both, the queries (vectors, codes, product, category,
                   classifier probabilities over ``names``)
    OUT/meta.json  model, drop, counts, timings
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2

log = logging.getLogger("real_embeddings")

# hue rotations (fractions of the colour wheel) that turn a listing into a colour variant
VARIANT_HUES = (-0.4, -0.25, -0.12, 0.12, 0.25, 0.4)
NO_PRODUCT = -1


class Augmenter:
    """One random re-shot of a listing photo (``uint8[3, S, S]`` in, same shape out).

    Args:
        size: the model's input side.
        min_scale: smallest share of the photo's area a re-framed copy keeps.
        variant_share: probability that a copy is a colour variant (a new product).
    """

    def __init__(self, size: int, min_scale: float, variant_share: float) -> None:
        self.variant_share = variant_share
        self._reshoot = v2.Compose(
            [
                v2.RandomResizedCrop(size, scale=(min_scale, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
            ]
        )

    def __call__(self, image: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        """The copy and its variant (-1: the same product, else an index of VARIANT_HUES)."""
        out = self._reshoot(image)
        if rng.random() >= self.variant_share:
            return out, -1
        k = int(rng.integers(len(VARIANT_HUES)))
        return v2.functional.adjust_hue(out, VARIANT_HUES[k]), k


def _product_ids(keys: list[str], table: dict[str, int]) -> np.ndarray:
    """Integer ids of product keys, numbering new keys as they come."""
    return np.array([table.setdefault(k, len(table)) for k in keys], dtype=np.int64)


def grow_catalog(
    encoder: Any,
    catalog_ids: np.ndarray,
    categories: np.ndarray,
    products: list[str],
    images: torch.Tensor,
    total: int,
    aug: Augmenter,
    rng: np.random.Generator,
    chunk: int,
) -> dict[str, Any]:
    """The listings (originals first, then augmented copies) embedded in chunks of ``chunk``.

    Returns arrays ``item_ids``, ``categories``, ``product_keys``, ``codes``, ``vectors``.
    """
    n0 = len(catalog_ids)
    item_ids = np.empty(total, dtype=object)
    cats = np.empty(total, dtype=object)
    keys: list[str] = []
    codes = vectors = None
    t0 = time.perf_counter()
    for start in range(0, total, chunk):
        rows = np.arange(start, min(start + chunk, total))
        src = rows % n0
        batch = torch.empty(len(rows), *images.shape[1:], dtype=torch.uint8)
        for j, (row, s) in enumerate(zip(rows, src, strict=True)):
            copy = row // n0
            if copy == 0:
                batch[j], variant = images[s], -1
            else:
                batch[j], variant = aug(images[s], rng)
            item_ids[row] = f"{catalog_ids[s]}~{copy}" if copy else str(catalog_ids[s])
            cats[row] = categories[s]
            keys.append(products[s] if variant < 0 else f"{products[s]}~hue{variant}")
        enc = encoder.encode(batch)
        if codes is None:
            codes = np.empty((total, enc.codes.shape[1]), dtype=np.uint8)
            vectors = np.empty((total, enc.embeddings.shape[1]), dtype=np.float32)
        codes[rows] = enc.codes
        vectors[rows] = enc.embeddings
        done = rows[-1] + 1
        rate = done / (time.perf_counter() - t0)
        log.info(
            "embedded %d/%d listings (%.0f/s, %.0f s left)",
            done,
            total,
            rate,
            (total - done) / rate,
        )
    return {
        "item_ids": item_ids,
        "categories": cats,
        "product_keys": keys,
        "codes": codes,
        "vectors": vectors,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--drop", default="data/window", help="the drop (catalog and queries)")
    p.add_argument("--truth", default="data/window.truth", help="its truth (products)")
    p.add_argument("--model", default="runs/train/model", help="a trained model folder")
    p.add_argument("--mining", default="runs/mining", help="mining outputs (click labels)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--items", type=int, default=200_000, help="catalog listings to reach")
    p.add_argument("--fresh", type=int, default=2_000, help="extra listings for upserts")
    p.add_argument("--min-scale", type=float, default=0.5, help="smallest crop area share")
    p.add_argument("--variant-share", type=float, default=0.5, help="copies that are variants")
    p.add_argument("--chunk", type=int, default=512, help="photos per encoder call")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default=None, help="default: reports/bench/real_<items>")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from vsearch.evaluation.evalset import load_eval_set
    from vsearch.index.embeddings import EmbeddingSet
    from vsearch.search.build import model_info
    from vsearch.search.encoder import NetEncoder
    from vsearch.search.fusion import align_probs
    from vsearch.search.images import decode_images
    from vsearch.settings import load_settings

    settings = load_settings(Path(args.params))
    torch.set_num_threads(settings.project.threads)
    drop, model = Path(args.drop), Path(args.model)
    out = Path(args.out or f"reports/bench/real_{args.items}")
    encoder = NetEncoder.load(model, settings.project.device, batch_size=args.chunk)
    size = int(encoder.net.config.input_size)
    ev = load_eval_set(drop, Path(args.truth), settings.split, Path(args.mining))
    if not ev.has_truth:
        raise SystemExit(f"{args.truth}: the drop has no truth; ident@10 needs product ids")
    catalog = ev.catalog.reset_index(drop=True)
    t0 = time.perf_counter()
    images = decode_images([drop / p for p in catalog["image"]], size, settings.project.threads)
    ids = catalog["item_id"].astype(str).to_numpy(object)
    products = [ev.product_of.get(i, f"listing:{i}") for i in ids]
    log.info("%d listing photos decoded in %.1fs", len(ids), time.perf_counter() - t0)
    aug = Augmenter(size, args.min_scale, args.variant_share)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    grown = grow_catalog(
        encoder,
        ids,
        catalog["category"].astype(str).to_numpy(object),
        products,
        images,
        args.items + args.fresh,
        aug,
        rng,
        args.chunk,
    )
    embed_s = time.perf_counter() - t0
    table: dict[str, int] = {}
    product = _product_ids(grown["product_keys"], table)
    # fresh listings: a random sample of the augmented copies (never originals)
    order = rng.permutation(np.arange(len(ids), args.items + args.fresh))
    fresh_rows = np.sort(order[: args.fresh])
    keep = np.ones(args.items + args.fresh, dtype=bool)
    keep[fresh_rows] = False
    info = model_info(encoder)

    def subset(rows: np.ndarray) -> EmbeddingSet:
        return EmbeddingSet(
            grown["item_ids"][rows],
            grown["categories"][rows],
            grown["codes"][rows],
            grown["vectors"][rows],
            info,
        )

    catalog_rows = np.flatnonzero(keep)
    subset(catalog_rows).save(out / "catalog")
    subset(fresh_rows).save(out / "fresh")
    # queries: decoded and encoded as uploads are (no box: the model detects)
    t0 = time.perf_counter()
    q_images = decode_images([drop / p for p in ev.query_images], size, settings.project.threads)
    enc = encoder.encode(q_images)
    names = sorted(set(grown["categories"][catalog_rows].tolist()))
    probs = align_probs(enc.category_probs, encoder.categories, names)
    q_product = np.array([table.get(s, NO_PRODUCT) for s in ev.query_sku], dtype=np.int64)
    query_s = time.perf_counter() - t0
    np.savez(
        out / "data.npz",
        product=product[catalog_rows],
        fresh_product=product[fresh_rows],
        q_vectors=enc.embeddings.astype(np.float32),
        q_codes=enc.codes,
        q_product=q_product,
        q_category=np.asarray(ev.query_category, dtype=str),
        q_probs=probs,
        names=np.asarray(names, dtype=str),
    )
    meta = {
        "items": len(catalog_rows),
        "fresh": len(fresh_rows),
        "source_listings": len(ids),
        "products": len(np.unique(product[catalog_rows])),
        "queries": len(q_product),
        "queries_with_product_in_catalog": int((q_product != NO_PRODUCT).sum()),
        "model": info.to_dict(),
        "drop": str(drop),
        "eval_set": ev.eval_set_id,
        "augment": {
            "min_scale": args.min_scale,
            "variant_share": args.variant_share,
            "variant_hues": list(VARIANT_HUES),
            "seed": args.seed,
        },
        "embed_s": round(embed_s, 1),
        "listings_per_s": round((args.items + args.fresh) / embed_s, 1),
        "queries_s": round(query_s, 1),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def load_split(folder: Path, seed: int) -> tuple[Any, Any, Any, np.ndarray]:
    """(catalog, fresh, (tuning, test) queries, product ids of the catalog) from ``folder``.

    The held-out queries are split at random (``seed``) into a tuning half (what vsearch tunes
    on) and a test half (what every system is measured on): the two never overlap.
    """
    from vsearch.index.embeddings import EmbeddingSet
    from vsearch.index.synthetic import SyntheticQueries

    folder = Path(folder)
    if not (folder / "data.npz").is_file():
        raise SystemExit(f"{folder}: no data.npz; write it with python -m bench.real_embeddings")
    catalog = EmbeddingSet.load(folder / "catalog")
    fresh = EmbeddingSet.load(folder / "fresh")
    with np.load(folder / "data.npz") as z:
        d = {k: z[k] for k in z.files}
    names = tuple(str(n) for n in d["names"])
    order = np.random.default_rng(seed).permutation(len(d["q_product"]))
    halves = np.array_split(order, 2)

    def queries(rows: np.ndarray) -> SyntheticQueries:
        rows = np.sort(rows)
        return SyntheticQueries(
            vectors=d["q_vectors"][rows],
            codes=d["q_codes"][rows],
            product=d["q_product"][rows],
            category=d["q_category"][rows].astype(object),
            category_probs=d["q_probs"][rows],
            category_names=names,
        )

    return catalog, fresh, (queries(halves[0]), queries(halves[1])), d["product"]
