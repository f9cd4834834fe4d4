"""Seeded synthetic embeddings that behave like a product catalog's, for tests and benchmarks.

Why not uniform noise: on random vectors every index looks alike (no neighbourhood structure,
Hamming codes carry almost no signal) and partitioning by category would be meaningless. Real
product embeddings lie near a low-dimensional manifold and are clustered hierarchically, and
queries are noisier views of catalog products with an imperfect category prediction. This module
generates exactly that, so the benchmark's ratios say something about production:

* latent points (``latent_dim``) clustered as categories > styles > products > 1..N listings
  (near-duplicates from several sellers),
* mapped to ``dim`` floats by a fixed random smooth map (``tanh`` layer, then a linear lift), plus
  a little ambient noise, L2-normalised,
* queries ("real shots") = a catalog product's latent point with more noise, and more ambient
  noise, each with simulated category-classifier probabilities whose arg-max is wrong for about
  ``p_wrong_category`` of the queries (confusions go to nearby categories, and wrong predictions
  tend to have lower confidence, as with a real classifier),
* binary codes derived from the floats (:class:`vsearch.index.codes.ProjectionEncoder`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from vsearch.index.codes import ProjectionEncoder
from vsearch.index.embeddings import EmbeddingSet, ModelInfo

log = logging.getLogger(__name__)

CATEGORY_NAMES = (
    "shoes",
    "bags",
    "dresses",
    "tops",
    "trousers",
    "watches",
    "glasses",
    "hats",
    "jewelry",
    "toys",
    "phones",
    "furniture",
)
SYNTHETIC_MODEL = ModelInfo(name="synthetic-projection", version="1", fingerprint="synthetic")
_CHUNK = 65_536  # rows mapped at a time: bounds peak memory at 1M+ items


@dataclass(frozen=True)
class SyntheticSpec:
    """Shape of the synthetic catalog (the defaults mimic a product-embedding space).

    Spreads are standard deviations in latent space; ``ambient_*`` are norms of isotropic noise
    added in the output space relative to a unit vector.
    """

    items: int = 10_000
    dim: int = 256
    bits: int = 256
    latent_dim: int = 32
    hidden_dim: int = 96
    categories: int = 12
    category_skew: float = 6.0  # Dirichlet concentration of category sizes (lower = more skewed)
    products_per_style: float = 40.0
    lookalike_fraction: float = 0.3  # products that copy another product but for one attribute
    lookalike_dims: int = 2  # latent dimensions a look-alike differs in
    spread_lookalike: float = 0.5
    max_listings: int = 5
    spread_category: float = 1.0
    spread_style: float = 0.5
    spread_product: float = 0.3
    spread_listing: float = 0.05
    spread_query: float = 0.3
    ambient_listing: float = 0.15
    ambient_query: float = 0.3
    p_wrong_category: float = 0.05
    encoder_sample: int = 50_000
    seed: int = 7

    def __post_init__(self) -> None:
        if self.items < self.categories:
            raise ValueError(f"items ({self.items}) must be >= categories ({self.categories})")
        if self.bits % 8 or self.bits > self.dim:
            raise ValueError(f"bits must be a multiple of 8 and <= dim, got {self.bits}")
        if not 0 <= self.p_wrong_category < 1:
            raise ValueError("p_wrong_category must be in [0, 1)")


@dataclass(frozen=True)
class SyntheticQueries:
    """Held-out queries with their truth and a simulated category prediction."""

    vectors: np.ndarray  # float32[nq, d]
    codes: np.ndarray  # uint8[nq, bits/8]
    product: np.ndarray  # int64[nq] true product
    category: np.ndarray  # str[nq] true category
    category_probs: np.ndarray  # float32[nq, n_categories] simulated classifier output
    category_names: tuple[str, ...]

    @property
    def predicted(self) -> np.ndarray:
        """Arg-max category name per query."""
        names = np.asarray(self.category_names, dtype=object)
        return names[self.category_probs.argmax(axis=1)]

    @property
    def confidence(self) -> np.ndarray:
        return self.category_probs.max(axis=1)

    def __len__(self) -> int:
        return len(self.vectors)


@dataclass
class SyntheticWorld:
    """A catalog plus everything needed to draw more queries from the same distribution."""

    spec: SyntheticSpec
    catalog: EmbeddingSet
    product: np.ndarray  # int64[n] product of each catalog item
    encoder: ProjectionEncoder
    category_names: tuple[str, ...]
    _product_z: np.ndarray = field(repr=False)
    _product_cat: np.ndarray = field(repr=False)
    _category_z: np.ndarray = field(repr=False)
    _w1: np.ndarray = field(repr=False)
    _b1: np.ndarray = field(repr=False)
    _w2: np.ndarray = field(repr=False)

    def _lift(self, z: np.ndarray, ambient: float, rng: np.random.Generator) -> np.ndarray:
        return _lift(z, self._w1, self._b1, self._w2, ambient, rng)

    def queries(self, n: int, seed: int) -> SyntheticQueries:
        """``n`` real-shot queries of catalog products (independent of the catalog's noise).

        Args:
            n: number of queries.
            seed: a seed distinct from the catalog's gives a disjoint, held-out draw.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        rng = np.random.default_rng([self.spec.seed, seed, 1])
        # A query shows a product people search for: weight products by their listings.
        product = self.product[rng.integers(0, len(self.product), n)]
        z = self._product_z[product] + rng.normal(
            0, self.spec.spread_query, (n, self.spec.latent_dim)
        ).astype(np.float32)
        vectors = self._lift(z, self.spec.ambient_query, rng)
        true_cat = self._product_cat[product]
        probs = _category_probs(z, true_cat, self._category_z, self.spec.p_wrong_category, rng)
        names = np.asarray(self.category_names, dtype=object)
        return SyntheticQueries(
            vectors=vectors,
            codes=self.encoder.encode(vectors),
            product=product,
            category=names[true_cat],
            category_probs=probs,
            category_names=self.category_names,
        )


def _lift(
    z: np.ndarray,
    w1: np.ndarray,
    b1: np.ndarray,
    w2: np.ndarray,
    ambient: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Latent → unit vectors near the manifold ``w2 · tanh(w1 · z + b1)``, chunked."""
    out = np.empty((len(z), w2.shape[1]), dtype=np.float32)
    for start in range(0, len(z), _CHUNK):
        h = np.tanh(z[start : start + _CHUNK] @ w1 + b1)
        x = h @ w2
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        x += rng.normal(0, ambient / np.sqrt(x.shape[1]), x.shape).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + len(x)] = x
    return out


def _category_probs(
    z: np.ndarray,
    true_cat: np.ndarray,
    category_z: np.ndarray,
    p_wrong: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Simulated classifier: softmax of (sharpness x closeness to category centres + noise).

    The sharpness is solved by bisection so that the arg-max is wrong for ``p_wrong`` of the
    queries. Errors therefore go to categories whose centres are close, and a wrong arg-max
    comes with a small margin (low confidence), as a real, roughly calibrated classifier's does.
    """
    d2 = ((z[:, None, :] - category_z[None, :, :]) ** 2).sum(axis=2)
    base = -(d2 - d2.mean(axis=1, keepdims=True)) / d2.std()
    noise = rng.gumbel(size=base.shape)

    def wrong_rate(a: float) -> float:
        return float(((a * base + noise).argmax(axis=1) != true_cat).mean())

    lo, hi = 1e-3, 1e3
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        if wrong_rate(mid) > p_wrong:
            lo = mid
        else:
            hi = mid
    logits = hi * base + noise
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def make_world(spec: SyntheticSpec | None = None) -> SyntheticWorld:
    """Generate the catalog (embeddings + codes) of ``spec``; seeded, deterministic."""
    spec = spec or SyntheticSpec()
    rng = np.random.default_rng(spec.seed)
    m, c = spec.latent_dim, spec.categories
    names = (
        tuple(CATEGORY_NAMES[:c])
        if c <= len(CATEGORY_NAMES)
        else tuple(f"cat{i:03d}" for i in range(c))
    )
    # Listings per product (1..max_listings), enough products to cover the catalog.
    listings = rng.integers(1, spec.max_listings + 1, spec.items)  # enough even if all are 1
    n_products = int(np.searchsorted(np.cumsum(listings), spec.items) + 1)
    listings = listings[:n_products]
    listings[-1] -= int(listings.sum() - spec.items)
    product = np.repeat(np.arange(n_products), listings)

    shares = rng.dirichlet(np.full(c, spec.category_skew))
    product_cat = rng.choice(c, n_products, p=shares)
    first = min(c, n_products)
    product_cat[:first] = np.arange(first)  # every category non-empty when possible
    category_z = rng.normal(0, spec.spread_category, (c, m)).astype(np.float32)
    product_z = np.empty((n_products, m), dtype=np.float32)
    for k in range(c):
        members = np.flatnonzero(product_cat == k)
        n_styles = max(1, round(len(members) / spec.products_per_style))
        styles = category_z[k] + rng.normal(0, spec.spread_style, (n_styles, m))
        style_of = rng.integers(0, n_styles, len(members))
        product_z[members] = styles[style_of] + rng.normal(
            0, spec.spread_product, (len(members), m)
        )
        # Look-alikes: copies of an earlier product of the category, changed in a few latent
        # dimensions only (another colour, another strap): the hard negatives of product search.
        copies = members[1:][rng.random(len(members) - 1) < spec.lookalike_fraction]
        if len(copies):
            originals = members[
                (rng.random(len(copies)) * np.searchsorted(members, copies)).astype(int)
            ]
            delta = np.zeros((len(copies), m), dtype=np.float32)
            dims = rng.integers(0, m, (len(copies), spec.lookalike_dims))
            rows = np.repeat(np.arange(len(copies)), spec.lookalike_dims)
            delta[rows, dims.ravel()] = rng.normal(0, spec.spread_lookalike, rows.size)
            product_z[copies] = product_z[originals] + delta

    w1 = (rng.normal(0, 1, (m, spec.hidden_dim)) / np.sqrt(m)).astype(np.float32)
    b1 = rng.normal(0, 0.3, spec.hidden_dim).astype(np.float32)
    w2 = np.linalg.qr(rng.normal(0, 1, (spec.dim, spec.hidden_dim)))[0].T.astype(np.float32)

    z = product_z[product] + rng.normal(0, spec.spread_listing, (spec.items, m)).astype(np.float32)
    vectors = _lift(z, w1, b1, w2, spec.ambient_listing, rng)
    log.info("synthetic catalog: %d items, %d products, %d categories", spec.items, n_products, c)
    encoder = ProjectionEncoder.fit(vectors, spec.bits, sample=spec.encoder_sample, seed=spec.seed)
    codes = np.concatenate(
        [encoder.encode(vectors[s : s + _CHUNK]) for s in range(0, spec.items, _CHUNK)]
    )
    names_arr = np.asarray(names, dtype=object)
    catalog = EmbeddingSet(
        item_ids=np.asarray([f"it{i:08d}" for i in range(spec.items)], dtype=object),
        categories=names_arr[product_cat[product]],
        codes=codes,
        vectors=vectors,
        model=SYNTHETIC_MODEL,
    )
    return SyntheticWorld(
        spec=spec,
        catalog=catalog,
        product=product.astype(np.int64),
        encoder=encoder,
        category_names=names,
        _product_z=product_z,
        _product_cat=product_cat,
        _category_z=category_z,
        _w1=w1,
        _b1=b1,
        _w2=w2,
    )
