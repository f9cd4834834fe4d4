"""Sellers and their listings: the catalog rows of the demo shop.

Why several sellers per product: on a marketplace the same product is listed many times, each
seller with their own photo, title, price and quality. Search must find *the product* (all its
listings are correct answers) and then rank the listings, so the catalog repeats products on
purpose. Popularity is heavy-tailed (a few sellers and products dominate), like real shops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vsearch.world.products import CatalogProduct, Product
from vsearch.world.render import StudioStyle

US_PER_S = 1_000_000
SECONDS_PER_DAY = 86_400

SELLER_ZIPF = 1.0  # seller popularity ~ 1 / rank**SELLER_ZIPF
SELLER_QUALITY_BETA = (5.0, 2.0)  # most sellers are decent, a few are poor
LISTING_QUALITY_STD = 0.08
SELLER_MARKUP_STD = 0.12  # log-normal spread of a seller's prices around the product price
LISTING_PRICE_STD = 0.05
PRODUCT_PRICE_STD = 0.35  # log-normal spread of product prices within a category
SALES_MEDIAN = 12.0  # typical units sold by a listing of an average product
SALES_SIGMA = 1.2  # log-normal spread: a heavy tail of best-sellers
MIN_PRICE, PRICE_CENTS = 1.0, 0.99  # shop prices end in .99
LISTED_DAYS = (0.05, 240.0)  # listings appear this many days before the event window

# Seller photo style ranges.
BACKDROP_LEVEL = (225, 255)  # studio backdrops are light ...
BACKDROP_TINT = 10  # ... with a slight colour tint
OCCUPANCY = (0.55, 0.88)
ANGLE_MAX = 8.0  # degrees
OFFSET_MAX = 0.06  # fraction of the frame
SHADOW = (0.05, 0.35)
BACKDROP_GRADIENT = (0.0, 0.12)
FLIP_PROB = 0.25

CATEGORY_PRICE: dict[str, float] = {
    "shoe": 65.0,
    "handbag": 80.0,
    "t-shirt": 18.0,
    "dress": 45.0,
    "hat": 22.0,
    "watch": 120.0,
    "bottle": 16.0,
    "mug": 12.0,
    "chair": 95.0,
    "lamp": 48.0,
    "phone": 380.0,
    "sunglasses": 35.0,
}
NOUNS: dict[str, tuple[str, str, str, str]] = {
    "shoe": ("low-top sneaker", "high-top sneaker", "ankle boot", "heeled pump"),
    "handbag": ("tote bag", "satchel", "clutch", "bucket bag"),
    "t-shirt": ("crew-neck tee", "v-neck tee", "long-sleeve tee", "tank top"),
    "dress": ("a-line dress", "sheath dress", "maxi dress", "mermaid dress"),
    "hat": ("baseball cap", "fedora", "beanie", "bucket hat"),
    "watch": ("classic watch", "square watch", "sport watch", "slim watch"),
    "bottle": ("water bottle", "glass bottle", "round flask", "sports bottle"),
    "mug": ("mug", "latte mug", "espresso cup", "tapered mug"),
    "chair": ("dining chair", "armchair", "bar stool", "office chair"),
    "lamp": ("table lamp", "desk lamp", "globe lamp", "floor lamp"),
    "phone": ("phone", "dual-camera phone", "triple-camera phone", "flip phone"),
    "sunglasses": (
        "aviator sunglasses",
        "wayfarer sunglasses",
        "round sunglasses",
        "cat-eye sunglasses",
    ),
}
PATTERN_WORDS: dict[str, str] = {
    "solid": "plain",
    "stripes": "striped",
    "diagonal": "diagonal-stripe",
    "dots": "polka-dot",
    "checks": "checked",
    "zigzag": "zigzag",
    "colorblock": "colour-block",
}
TITLE_TEMPLATES: tuple[str, ...] = (
    "{Color} {pattern} {noun} with {logo} logo",
    "{noun} - {color}/{accent} - {Logo} edition",
    "NEW {Logo} {noun} {color} {pattern}",
    "{Logo} {color} {noun}",
    "{pattern} {noun}, {color} and {accent} | fast shipping",
)


@dataclass(frozen=True)
class Seller:
    """A shop on the marketplace: popularity, typical quality and price level, photo style."""

    seller_id: str
    popularity: float
    quality: float
    markup: float
    title_template: int
    style: StudioStyle


def make_sellers(n: int, rng: np.random.Generator) -> list[Seller]:
    """``n`` sellers with Zipf popularity and their own studio photo habits."""
    pop = 1.0 / np.arange(1, n + 1) ** SELLER_ZIPF
    pop = pop[rng.permutation(n)] / pop.sum()
    sellers = []
    for i in range(n):
        level = rng.integers(*BACKDROP_LEVEL, endpoint=True)
        tint = rng.integers(-BACKDROP_TINT, BACKDROP_TINT, 3, endpoint=True)
        backdrop = tuple(int(v) for v in np.clip(level + tint, 0, 255))
        style = StudioStyle(
            background=backdrop,  # type: ignore[arg-type]
            occupancy=float(rng.uniform(*OCCUPANCY)),
            angle=float(rng.uniform(-ANGLE_MAX, ANGLE_MAX)),
            offset=(
                float(rng.uniform(-OFFSET_MAX, OFFSET_MAX)),
                float(rng.uniform(-OFFSET_MAX, OFFSET_MAX)),
            ),
            shadow=float(rng.uniform(*SHADOW)),
            gradient=float(rng.uniform(*BACKDROP_GRADIENT)),
            flip=bool(rng.random() < FLIP_PROB),
        )
        sellers.append(
            Seller(
                seller_id=f"seller-{i:04d}",
                popularity=float(pop[i]),
                quality=float(rng.beta(*SELLER_QUALITY_BETA)),
                markup=float(rng.lognormal(0.0, SELLER_MARKUP_STD)),
                title_template=int(rng.integers(len(TITLE_TEMPLATES))),
                style=style,
            )
        )
    return sellers


def seller_counts(n_items: int, lo: int, hi: int, rng: np.random.Generator) -> list[int]:
    """Listings per product, each in ``lo..hi``, summing exactly to ``n_items``.

    The number of products follows from the draw (about ``n_items / mean(lo, hi)``).

    Raises:
        ValueError: no split exists (``n_items < lo``, or ``lo == hi`` not dividing it).
    """
    if n_items < lo:
        raise ValueError(f"{n_items} listings cannot give a product its minimum of {lo} sellers")
    counts: list[int] = []
    while sum(counts) < n_items:
        counts.append(int(rng.integers(lo, hi, endpoint=True)))
    over = sum(counts) - n_items
    for i in range(len(counts) - 1, -1, -1):  # trim from the end, keeping every count >= lo
        cut = min(over, counts[i] - lo)
        counts[i] -= cut
        over -= cut
    if over:  # all at lo: drop the last product, then spread its leftover over the others
        short = lo - over
        counts.pop()
        for i in range(len(counts)):
            add = min(short, hi - counts[i])
            counts[i] += add
            short -= add
        if short:
            raise ValueError(f"{n_items} listings cannot be split into products of {lo}..{hi}")
    return counts


def product_popularity(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Demand share of each product: Zipf over a random order (sums to 1)."""
    pop = 1.0 / np.arange(1, n + 1) ** exponent
    return pop[rng.permutation(n)] / pop.sum()


def title(product: Product, template: int) -> str:
    """A seller's listing title in that seller's wording (titles are noisy, never ids)."""
    color = product.body
    return TITLE_TEMPLATES[template].format(
        Color=color.capitalize(),
        color=color,
        accent=product.accent,
        pattern=PATTERN_WORDS[product.pattern],
        noun=NOUNS[product.category][product.variant],
        logo=product.logo,
        Logo=product.logo.capitalize(),
    )


def make_listings(
    products: list[CatalogProduct],
    counts: list[int],
    sellers: list[Seller],
    popularity: np.ndarray,
    window_start_us: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """One row per listing, in random order (ids carry no hint of which product they show).

    Columns: item_id, sku, category, seller_id, title, price, listed_at_us, quality, sales,
    seller (index into ``sellers``, for the renderer).
    """
    seller_pop = np.array([s.popularity for s in sellers])
    rows = []
    for cp, k, demand in zip(products, counts, popularity, strict=True):
        p = cp.product
        base_price = CATEGORY_PRICE[p.category] * rng.lognormal(0.0, PRODUCT_PRICE_STD)
        chosen = rng.choice(
            len(sellers), size=min(k, len(sellers)), replace=False, p=seller_pop / seller_pop.sum()
        )
        for s_idx in chosen:
            s = sellers[int(s_idx)]
            price = base_price * s.markup * rng.lognormal(0.0, LISTING_PRICE_STD)
            reach = demand * len(products) * np.sqrt(s.popularity * len(sellers))
            sales = SALES_MEDIAN * reach * rng.lognormal(0.0, SALES_SIGMA)
            age_s = rng.uniform(*LISTED_DAYS) * SECONDS_PER_DAY
            rows.append(
                {
                    "sku": cp.sku,
                    "category": p.category,
                    "seller_id": s.seller_id,
                    "title": title(p, s.title_template),
                    "price": float(np.floor(max(price, MIN_PRICE)) + PRICE_CENTS),
                    "listed_at_us": window_start_us - int(age_s) * US_PER_S,
                    "quality": round(
                        float(np.clip(rng.normal(s.quality, LISTING_QUALITY_STD), 0.0, 1.0)), 3
                    ),
                    "sales": int(sales),
                    "seller": int(s_idx),
                }
            )
    df = pd.DataFrame(rows).iloc[rng.permutation(len(rows))].reset_index(drop=True)
    df.insert(0, "item_id", [f"item-{i:06d}" for i in range(len(df))])
    return df
