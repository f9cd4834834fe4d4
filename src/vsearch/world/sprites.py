"""A product's cut-out picture (RGBA sprite): silhouette + colours + pattern + shading + logo.

Why a sprite: every photo of a product, studio or street, starts from the same cut-out, so all
listings and queries of one SKU show the same object and only the photography differs. The
sprite is a pure function of (product, size), which keeps rendering deterministic and lets each
worker process cache it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from vsearch.world.products import COLORS, PATTERNS, Product
from vsearch.world.shapes import (
    ACCENT,
    BODY,
    CATEGORIES,
    DARK,
    LIGHT,
    METAL,
    VARIANTS,
    glyph_mask,
    silhouette,
)

ROLE_COLORS: dict[int, tuple[int, int, int]] = {
    DARK: (30, 30, 36),
    LIGHT: (236, 234, 228),
    METAL: (172, 174, 180),
}
PATTERN_PERIOD = 0.085  # stripe/check period as a fraction of the sprite side
STRIPE_DUTY = 0.38  # share of a period drawn in the accent colour
DOT_RADIUS = 0.3  # dot radius as a fraction of the period
ZIGZAG_AMPLITUDE = 0.35  # zigzag height as a fraction of the period
COLORBLOCK_FROM = 0.62  # colour-block: accent below this height (fraction of the side)
SHADE_TOP, SHADE_BOTTOM = 1.08, 0.82  # light from above: brighter top, darker bottom
SHADE_SIDES = 0.22  # darkening at the left/right edge of the sprite (rounded form)
EDGE_DARKEN = 0.45  # outlines and part seams drawn this much darker
MIN_LOGO_PX = 4  # logos stay drawable on tiny images
MID_GREY = 128.0  # logos on darker ground are printed white, else black
LOGO_MIN_CONTRAST = 90.0  # min luminance gap between logo and what it is printed on
SPRITE_CACHE = 128  # sprites cached per process (jobs come grouped by product)
ALPHA_SOLID = 24  # alpha (0..255) above which a pixel counts as product (tight crop, true box)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (v, u) in 0..1, shared by every sprite of one size."""
    v, u = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    return v, u


@lru_cache(maxsize=8 * len(PATTERNS))
def pattern_mask(pattern: str, size: int) -> np.ndarray:
    """bool [size, size]: where the pattern shows the accent colour (cached per process)."""
    v, u = _grid(size)
    p = PATTERN_PERIOD
    if pattern == "solid":
        sel = np.zeros((size, size), dtype=bool)
    elif pattern == "stripes":
        sel = np.mod(v / p, 1.0) < STRIPE_DUTY
    elif pattern == "diagonal":
        sel = np.mod((u + v) / p, 1.0) < STRIPE_DUTY
    elif pattern == "dots":
        row = np.floor(v / p)
        du = np.mod(u / p + 0.5 * row, 1.0) - 0.5
        dv = np.mod(v / p, 1.0) - 0.5
        sel = du**2 + dv**2 < DOT_RADIUS**2
    elif pattern == "checks":
        sel = (np.floor(u / p) + np.floor(v / p)) % 2 == 1
    elif pattern == "zigzag":
        tri = np.abs(np.mod(u / p, 2.0) - 1.0)
        sel = np.mod(v / p + ZIGZAG_AMPLITUDE * tri, 1.0) < STRIPE_DUTY
    elif pattern == "colorblock":
        sel = v > COLORBLOCK_FROM
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return sel


def pattern_texture(pattern: str, body: str, accent: str, size: int) -> np.ndarray:
    """float32 [size, size, 3] body fill: the pattern in body and accent colours."""
    b = np.array(COLORS[body], dtype=np.float32)
    a = np.array(COLORS[accent], dtype=np.float32)
    return np.where(pattern_mask(pattern, size)[..., None], a, b)


@dataclass(frozen=True)
class _Layout:
    """Everything about a sprite that depends only on its silhouette, cached per process.

    ``weights[role]`` is the role's share of each pixel's colour (coverage / total coverage)
    times the form shading and outline darkening, cropped to the product's tight box, so a
    sprite is just a weighted sum of its role colours.
    """

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the size x size canvas
    weights: dict[int, np.ndarray]  # role -> float32 [h, w, 1]
    alpha: np.ndarray  # uint8 [h, w]
    logo: tuple[int, int, int]  # x0, y0, side of the logo patch, canvas pixels


@lru_cache(maxsize=8 * len(CATEGORIES) * VARIANTS)
def _layout(category: str, variant: int, size: int) -> _Layout:
    """The cached, product-independent part of every sprite of one silhouette."""
    sil = silhouette(category, variant, size)
    alpha = np.round(sil.alpha * 255.0).astype(np.uint8)
    ys, xs = np.nonzero(alpha > ALPHA_SOLID)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    v, u = _grid(size)
    shade = (SHADE_TOP + (SHADE_BOTTOM - SHADE_TOP) * v) * (1.0 - SHADE_SIDES * (2 * u - 1) ** 2)
    light = shade * (1.0 - EDGE_DARKEN * sil.edges) / np.maximum(sil.alpha, 1e-6)
    weights = {
        role: (mask * light)[y0:y1, x0:x1, None].astype(np.float32)
        for role, mask in sil.masks.items()
    }
    cx, cy, r = sil.logo
    px = max(MIN_LOGO_PX, round(2 * r * size))
    lx = min(max(round(cx * size) - px // 2, 0), size - px)
    ly = min(max(round(cy * size) - px // 2, 0), size - px)
    return _Layout((x0, y0, x1, y1), weights, alpha[y0:y1, x0:x1], (lx, ly, px))


@lru_cache(maxsize=SPRITE_CACHE)
def product_sprite(product: Product, size: int) -> Image.Image:
    """The product as a tight RGBA cut-out, drawn on a ``size`` square (cached per process)."""
    lay = _layout(product.category, product.variant, size)
    x0, y0, x1, y1 = lay.box
    rgb = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.float32)
    for role, weight in lay.weights.items():
        if role == BODY:
            fill = pattern_texture(product.pattern, product.body, product.accent, size)
            rgb += weight * fill[y0:y1, x0:x1]
        else:
            color = COLORS[product.accent] if role == ACCENT else ROLE_COLORS[role]
            rgb += weight * np.array(color, dtype=np.float32)

    lx, ly, px = lay.logo
    glyph = glyph_mask(product.logo, px)[..., None]
    gx0, gy0 = max(lx, x0), max(ly, y0)  # the logo patch, clipped to the product's box
    gx1, gy1 = min(lx + px, x1), min(ly + px, y1)
    if gx1 > gx0 and gy1 > gy0:
        under = rgb[gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0]
        g = glyph[gy0 - ly : gy1 - ly, gx0 - lx : gx1 - lx]
        under_luma = float(_luma(under.reshape(-1, 3)).mean())
        ink = np.array(COLORS[product.accent], dtype=np.float32)
        if abs(float(_luma(ink)) - under_luma) < LOGO_MIN_CONTRAST:
            ink = np.array(COLORS["white" if under_luma < MID_GREY else "black"], dtype=np.float32)
        under *= 1 - g
        under += ink * g

    out = np.empty((y1 - y0, x1 - x0, 4), dtype=np.uint8)
    out[..., :3] = np.clip(rgb + 0.5, 0, 255)
    out[..., 3] = lay.alpha
    return Image.fromarray(out, "RGBA")
