"""Products of the demo shop: attributes, look-alike groups and their ground-truth rows.

Why look-alike groups: the paper's hard cases are products that are *almost* the same (the same
sneaker with another logo, the same bag with another flap colour). Here a group is a base
product plus siblings that take other values of exactly ONE attribute, so every pair in a group
differs in that one attribute only. Identity is therefore fine-grained: shape, pattern and logo
matter as much as colour.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from vsearch.world.shapes import CATEGORIES, GLYPHS, VARIANTS

# Named colours (RGB). Body and accent colours are drawn from this list.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (200, 35, 40),
    "orange": (235, 120, 30),
    "mustard": (215, 170, 40),
    "olive": (110, 120, 45),
    "green": (40, 140, 70),
    "teal": (20, 140, 140),
    "sky": (90, 170, 225),
    "navy": (30, 45, 110),
    "purple": (110, 60, 150),
    "pink": (235, 130, 170),
    "burgundy": (120, 25, 45),
    "brown": (120, 75, 40),
    "tan": (200, 165, 120),
    "grey": (130, 130, 135),
    "charcoal": (55, 55, 60),
    "cream": (240, 230, 205),
    "white": (245, 245, 242),
    "black": (25, 25, 28),
}
PATTERNS: tuple[str, ...] = (
    "solid",
    "stripes",
    "diagonal",
    "dots",
    "checks",
    "zigzag",
    "colorblock",
)
# Which attribute a look-alike group varies, and how often: mostly the subtle ones (logo,
# accent colour, pattern), so that colour or silhouette alone rarely tells two products apart.
LOOKALIKE_ATTRIBUTE_WEIGHTS: dict[str, float] = {
    "logo": 0.35,
    "accent": 0.25,
    "pattern": 0.2,
    "variant": 0.12,
    "body": 0.08,
}
LOOKALIKE_GROUP_SIZES: tuple[int, ...] = (2, 2, 3)  # pairs are commoner than triples
ATTRIBUTES: tuple[str, ...] = ("variant", "body", "accent", "pattern", "logo")
MAX_DRAWS = 1000  # attempts to draw an unused attribute combination before giving up


@dataclass(frozen=True)
class Product:
    """What a product looks like; hashable, so renderers cache its sprite."""

    category: str
    variant: int
    body: str
    accent: str
    pattern: str
    logo: str

    def attributes(self) -> dict[str, str | int]:
        """The rendering attributes (the identity of a product, minus its category)."""
        d = asdict(self)
        d.pop("category")
        return d

    def attributes_json(self) -> str:
        """Stable JSON (sorted keys) for the ``products`` truth table."""
        return json.dumps(self.attributes(), sort_keys=True)


@dataclass(frozen=True)
class CatalogProduct:
    """A product with its demo ids: ``sku`` (identity) and ``lookalike_group``."""

    sku: str
    lookalike_group: str
    product: Product


def _values(attribute: str) -> list[str | int]:
    if attribute == "variant":
        return list(range(VARIANTS))
    if attribute in ("body", "accent"):
        return list(COLORS)
    if attribute == "pattern":
        return list(PATTERNS)
    if attribute == "logo":
        return list(GLYPHS)
    raise ValueError(f"unknown attribute {attribute!r}")


def _random_product(category: str, rng: np.random.Generator) -> Product:
    colors = list(COLORS)
    body, accent = rng.choice(len(colors), size=2, replace=False)
    return Product(
        category=category,
        variant=int(rng.integers(VARIANTS)),
        body=colors[body],
        accent=colors[accent],
        pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        logo=GLYPHS[int(rng.integers(len(GLYPHS)))],
    )


def _with(product: Product, attribute: str, value: str | int) -> Product:
    d = asdict(product)
    d[attribute] = value
    return Product(**d)


def _lookalike_group(
    base: Product, size: int, rng: np.random.Generator, taken: set[Product]
) -> list[Product] | None:
    """``size`` products that share everything with ``base`` but one attribute, or None."""
    names = list(LOOKALIKE_ATTRIBUTE_WEIGHTS)
    w = np.array([LOOKALIKE_ATTRIBUTE_WEIGHTS[n] for n in names])
    attribute = names[int(rng.choice(len(names), p=w / w.sum()))]
    current = getattr(base, attribute)
    others = [v for v in _values(attribute) if v != current]
    # Body and accent must stay different colours, or the "accent" would vanish.
    blocked = {"body": base.accent, "accent": base.body}.get(attribute)
    others = [v for v in others if v != blocked]
    picks = [others[i] for i in rng.permutation(len(others))[: size - 1]]
    group = [base, *(_with(base, attribute, v) for v in picks)]
    if len(group) < size or any(p in taken for p in group):
        return None
    return group


def group_sizes(n_products: int, lookalike_fraction: float, rng: np.random.Generator) -> list[int]:
    """Split ``n_products`` into look-alike groups (size >= 2) and singletons.

    About ``lookalike_fraction`` of the products end up in groups of 2 or 3.
    """
    target = round(n_products * lookalike_fraction)
    sizes: list[int] = []
    grouped = 0
    while target - grouped >= 2:
        size = min(int(rng.choice(LOOKALIKE_GROUP_SIZES)), target - grouped)
        sizes.append(size)
        grouped += size
    sizes.extend([1] * (n_products - grouped))
    return [sizes[i] for i in rng.permutation(len(sizes))]


def make_products(
    n_products: int,
    categories: tuple[str, ...],
    lookalike_fraction: float,
    rng: np.random.Generator,
) -> list[CatalogProduct]:
    """Draw ``n_products`` distinct products, about ``lookalike_fraction`` in look-alike groups.

    Every product gets a unique attribute combination (two SKUs never render the same), and
    each group shares a category and all but one attribute.

    Raises:
        ValueError: no unused attribute combination could be found (absurd sizes only).
    """
    if n_products < 1:
        raise ValueError("need at least one product")
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown categories {unknown}")
    taken: set[Product] = set()
    out: list[CatalogProduct] = []
    for g, size in enumerate(group_sizes(n_products, lookalike_fraction, rng)):
        for _ in range(MAX_DRAWS):
            category = categories[int(rng.integers(len(categories)))]
            base = _random_product(category, rng)
            group = [base] if size == 1 and base not in taken else None
            if size > 1 and base not in taken:
                group = _lookalike_group(base, size, rng, taken)
            if group:
                break
        else:
            raise ValueError("could not draw distinct products; lower world.items")
        taken.update(group)
        for product in group:
            sku = f"sku-{len(out):05d}"
            out.append(CatalogProduct(sku=sku, lookalike_group=f"lag-{g:05d}", product=product))
    return out


def differing_attributes(a: Product, b: Product) -> list[str]:
    """Names of the attributes in which two products differ (category included)."""
    fields = ("category", *ATTRIBUTES)
    return [f for f in fields if getattr(a, f) != getattr(b, f)]
