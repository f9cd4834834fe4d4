"""Photographing products: clean seller "studio" shots and messy shopper "real shots".

Why two renderers: the paper's core difficulty is the gap between catalog photos (centred,
well lit, plain background) and what shoppers upload (any angle, bad light, blur, clutter,
JPEG). Listings of one product differ only in each seller's photo style; queries put the same
product through perspective, rotation, lighting, colour cast, blur, noise and compression on a
real photograph, often beside another product, and record the product's true box.

Every image draws its randomness from its own generator seeded by (world seed, stream, image
index), so an image's bytes never depend on which worker rendered it or in which order.
Pixel work stays in PIL's C routines (lookup tables, masks, one resampling pass per warp):
thousands of images have to render in well under a minute on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from vsearch.assets.photos import random_background
from vsearch.world.products import Product
from vsearch.world.sprites import ALPHA_SOLID, product_sprite

STUDIO_STREAM, QUERY_STREAM = 101, 202  # RNG stream ids: studio and query images never collide

# Studio shots: per-listing jitter around the seller's style.
STUDIO_ANGLE_JITTER = 2.5  # degrees (std)
STUDIO_OCCUPANCY_JITTER = 0.03  # fraction of the frame (std)
STUDIO_OFFSET_JITTER = 0.02  # fraction of the frame (std)
STUDIO_MIN_MARGIN = 0.02  # product kept this far inside the frame
STUDIO_MIN_OCCUPANCY = 0.2  # never smaller than this share of the frame
SHADOW_BLUR = 0.025  # shadow softness, fraction of the frame
SHADOW_OFFSET = (0.012, 0.03)  # shadow displacement (x, y), fraction of the frame
SHADOW_REDUCE = 4  # shadows are blurred at 1/4 resolution: a soft shadow has no detail to lose
SHADOW_INK = (20, 18, 24)  # shadows are not pure black
FIT_REDUCING_GAP = 2.0  # PIL's fast two-step downscale, still alias-free

# Real shots: geometry.
QUERY_SCALE = (0.38, 0.78)  # product's longest side as a fraction of the frame
QUERY_MAX_FILL = 0.95  # after warping, the product never exceeds this share of the frame
QUERY_ANGLE_STD = 12.0  # degrees
QUERY_ANGLE_MAX = 30.0
QUERY_FLIP_PROB = 0.3
PERSPECTIVE_JITTER = 0.13  # corner displacement, fraction of the product's extent
PRE_REDUCE, PRE_REDUCE_BELOW = 2, 0.5  # halve the sprite first while shrinking below 1/2
DISTRACTOR_SCALE = (0.3, 0.65)
DISTRACTOR_SPRITE = 2  # distractors are drawn at 1/2 resolution (small, often out of focus)
DISTRACTOR_MAX_OVERLAP = 0.25  # share of the distractor's width that may overlap the product
DISTRACTOR_OUTSIDE = 0.2  # share of the distractor's height that may stick out of the frame
QUERY_SHADOW = (0.0, 0.45)  # contact shadow strength range

# Real shots: photometry.
BRIGHTNESS = (0.6, 1.25)
CONTRAST = (0.7, 1.2)
GAMMA = (0.8, 1.3)
COLOR_CAST = 0.13  # per-channel gain in 1 +- this
LIGHT_GRADIENT = 0.3  # strength of uneven light across the frame
BLUR_PROB = 0.65
BLUR_MAX = 1.6  # box-blur radius at REFERENCE_SIZE pixels (defocus)
MOTION_BLUR_PROB = 0.15
MOTION_BLUR_TAPS = 5  # motion blur kernel width (PIL kernels are 3x3 or 5x5)
MOTION_BLUR_HORIZONTAL = 0.5  # share of motion blurs that are horizontal (else diagonal)
NOISE_MAX = 9.0  # std of pixel noise (0..255 scale)
LIGHT_MAP = 16  # the light gradient is computed on a 16x16 grid and upsampled
NOISE_ZERO = 128.0  # noise is stored as uint8 around this value
NOISE_TILE_SEED = 20180819  # the shared noise tile is fixed, so it never depends on a worker
REFERENCE_SIZE = 256  # blur radii are defined at this image size and scale with it

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class StudioStyle:
    """A seller's photography habits; each listing jitters around them."""

    background: tuple[int, int, int]
    occupancy: float  # product's longest side / frame side
    angle: float  # degrees
    offset: tuple[float, float]  # product centre offset, fraction of the frame
    shadow: float  # 0..1 strength of the drop shadow
    gradient: float  # background darkening from top to bottom (0..1)
    flip: bool  # photographs products mirrored


@dataclass(frozen=True)
class RenderContext:
    """What every render needs besides the job: where to write and how to encode."""

    root: Path
    seed: int
    size: int
    studio_quality: int
    query_quality: tuple[int, int]


@dataclass(frozen=True)
class StudioJob:
    """One listing photo to render."""

    index: int
    rel_path: str
    product: Product
    style: StudioStyle


@dataclass(frozen=True)
class QueryJob:
    """One shopper photo to render; ``distractor`` is a second product in the frame."""

    index: int
    rel_path: str
    product: Product
    distractor: Product | None


@dataclass(frozen=True)
class QueryRender:
    """A rendered real shot and where its product is (pixels, x1/y1 exclusive)."""

    image: Image.Image
    box: Box
    jpeg_quality: int


def image_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The generator of one image: depends only on (seed, stream, index)."""
    return np.random.default_rng([seed, stream, index])


@lru_cache(maxsize=1)
def _solid_lut() -> list[int]:
    """Alpha -> 255 where the pixel counts as product, else 0."""
    return [255 if a > ALPHA_SOLID else 0 for a in range(256)]


def _scale_lut(k: float, pivot: float = 0.0) -> list[int]:
    """A lookup table ``v -> pivot + (v - pivot) * k`` (clipped to 0..255), for ``point``."""
    v = pivot + (np.arange(256) - pivot) * k
    return np.clip(v + 0.5, 0, 255).astype(np.uint8).tolist()


def _tight(sprite: Image.Image) -> Image.Image:
    """Crop an RGBA image to where its product is (alpha above ``ALPHA_SOLID``)."""
    mask = sprite.getchannel("A").point(_solid_lut())
    box = mask.getbbox()
    return sprite.crop(box) if box else sprite


def _fit(sprite: Image.Image, longest: float) -> Image.Image:
    """Resize so the longer side is ``longest`` pixels."""
    scale = longest / max(sprite.size)
    w, h = max(1, round(sprite.width * scale)), max(1, round(sprite.height * scale))
    return sprite.resize((w, h), Image.BICUBIC, reducing_gap=FIT_REDUCING_GAP)


def _shadow(img: Image.Image, alpha: Image.Image, xy: tuple[int, int], strength: float) -> None:
    """Darken ``img`` (in place) under a soft, offset copy of the product's ``alpha``.

    Drawn at 1/``SHADOW_REDUCE`` resolution around the product only: cheap, and a soft shadow
    has no detail to lose.
    """
    size, r = img.width, SHADOW_REDUCE
    blur = SHADOW_BLUR * size / r
    pad = int(np.ceil(3 * blur)) + 1
    w, h = max(1, alpha.width // r), max(1, alpha.height // r)
    layer = Image.new("L", (w + 2 * pad, h + 2 * pad), 0)
    layer.paste(alpha.resize((w, h), Image.BILINEAR), (pad, pad))
    layer = layer.filter(ImageFilter.GaussianBlur(blur)).point(_scale_lut(strength))
    layer = layer.resize((layer.width * r, layer.height * r), Image.BILINEAR)
    x = round(xy[0] + SHADOW_OFFSET[0] * size) - pad * r
    y = round(xy[1] + SHADOW_OFFSET[1] * size) - pad * r
    img.paste(Image.new("RGB", layer.size, SHADOW_INK), (x, y), layer)


@lru_cache(maxsize=8)
def _vertical_ramp(size: int) -> Image.Image:
    """0 at the top to 255 at the bottom (studio backdrop falloff)."""
    return Image.linear_gradient("L").resize((size, size), Image.BILINEAR)


def render_studio(
    product: Product, style: StudioStyle, size: int, rng: np.random.Generator
) -> Image.Image:
    """A seller's catalog photo: light backdrop, soft shadow, the seller's framing."""
    sprite = product_sprite(product, size)
    if style.flip:
        sprite = sprite.transpose(Image.FLIP_LEFT_RIGHT)
    angle = style.angle + rng.normal(0, STUDIO_ANGLE_JITTER)
    occupancy = style.occupancy + rng.normal(0, STUDIO_OCCUPANCY_JITTER)
    longest = np.clip(occupancy, STUDIO_MIN_OCCUPANCY, 1 - 2 * STUDIO_MIN_MARGIN) * size
    sprite = _tight(_fit(sprite, longest).rotate(angle, resample=Image.BILINEAR, expand=True))
    if max(sprite.size) > (1 - 2 * STUDIO_MIN_MARGIN) * size:
        sprite = _fit(sprite, (1 - 2 * STUDIO_MIN_MARGIN) * size)

    img = Image.new("RGB", (size, size), style.background)
    falloff = _vertical_ramp(size).point(_scale_lut(style.gradient))
    img.paste((0, 0, 0), (0, 0, size, size), falloff)
    margin = round(STUDIO_MIN_MARGIN * size)
    cx = size / 2 + (style.offset[0] + rng.normal(0, STUDIO_OFFSET_JITTER)) * size
    cy = size / 2 + (style.offset[1] + rng.normal(0, STUDIO_OFFSET_JITTER)) * size
    x = int(np.clip(round(cx - sprite.width / 2), margin, size - margin - sprite.width))
    y = int(np.clip(round(cy - sprite.height / 2), margin, size - margin - sprite.height))
    _shadow(img, sprite.getchannel("A"), (x, y), style.shadow)
    img.paste(sprite, (x, y), sprite)
    return img


def _perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> tuple[float, ...]:
    """PIL PERSPECTIVE coefficients mapping output points ``dst`` to input points ``src``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    return tuple(np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist())


def _warp(sprite: Image.Image, longest: float, size: int, rng: np.random.Generator) -> Image.Image:
    """Flip, scale, rotate and tilt a sprite like a hand-held photo; tight-cropped RGBA.

    Scale, rotation and perspective are composed into one homography and applied in a single
    resampling pass (faster and sharper than three).
    """
    if rng.random() < QUERY_FLIP_PROB:
        sprite = sprite.transpose(Image.FLIP_LEFT_RIGHT)
    scale = longest / max(sprite.size)
    while scale < PRE_REDUCE_BELOW and min(sprite.size) >= 2 * PRE_REDUCE:
        sprite = sprite.reduce(PRE_REDUCE)  # box-filter first: no aliasing when shrinking a lot
        scale *= PRE_REDUCE
    angle = np.deg2rad(np.clip(rng.normal(0, QUERY_ANGLE_STD), -QUERY_ANGLE_MAX, QUERY_ANGLE_MAX))
    w, h = sprite.size
    src = np.array([(0, 0), (w, 0), (w, h), (0, h)], float)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = (src - (w / 2, h / 2)) * scale @ rot.T
    extent = dst.max(axis=0) - dst.min(axis=0)
    dst += rng.uniform(-PERSPECTIVE_JITTER, PERSPECTIVE_JITTER, (4, 2)) * extent
    dst -= dst.min(axis=0)
    out_w, out_h = (int(np.ceil(v)) + 1 for v in dst.max(axis=0))
    coeffs = _perspective_coeffs(dst, src)
    sprite = _tight(sprite.transform((out_w, out_h), Image.PERSPECTIVE, coeffs, Image.BILINEAR))
    if max(sprite.size) > QUERY_MAX_FILL * size:
        sprite = _fit(sprite, QUERY_MAX_FILL * size)
    return sprite


def _distractor_xy(
    box: Box, d_size: tuple[int, int], size: int, rng: np.random.Generator
) -> tuple[int, int]:
    """Put the distractor beside the product, on the roomier side, overlapping it a little."""
    x0, _, x1, _ = box
    dw, dh = d_size
    overlap = round(rng.uniform(0, DISTRACTOR_MAX_OVERLAP) * dw)
    x = x0 - dw + overlap if x0 > size - x1 else x1 - overlap
    y = round(rng.uniform(-DISTRACTOR_OUTSIDE * dh, size - (1 - DISTRACTOR_OUTSIDE) * dh))
    return x, y


def _exposure_lut(rng: np.random.Generator) -> list[int]:
    """Per-channel lookup table: contrast, exposure, gamma and a colour cast in one pass."""
    x = np.arange(256, dtype=np.float64) / 255.0
    x = (x - 0.5) * rng.uniform(*CONTRAST) + 0.5
    x = np.clip(x * rng.uniform(*BRIGHTNESS), 0, 1) ** rng.uniform(*GAMMA)
    cast = rng.uniform(1 - COLOR_CAST, 1 + COLOR_CAST, 3)
    lut = np.clip(np.outer(cast, x) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return lut.ravel().tolist()


@lru_cache(maxsize=4)
def _noise_tile(size: int) -> Image.Image:
    """Fixed gaussian noise (std ``NOISE_MAX`` around ``NOISE_ZERO``), twice the frame.

    Queries crop a random window of it and scale it: adding a window needs no per-image draw of
    200k normals, and the tile is the same in every process.
    """
    rng = np.random.default_rng(NOISE_TILE_SEED)
    tile = NOISE_ZERO + NOISE_MAX * rng.standard_normal((2 * size, 2 * size, 3))
    return Image.fromarray(np.clip(tile + 0.5, 0, 255).astype(np.uint8), "RGB")


def _light_and_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Uneven light across the frame (one side darker) plus sensor noise, all in PIL."""
    size = img.width
    theta = rng.uniform(0, 2 * np.pi)
    strength = LIGHT_GRADIENT * rng.uniform(0, 1)
    ramp = np.linspace(-1, 1, LIGHT_MAP)
    slope = np.clip(np.cos(theta) * ramp[None, :] + np.sin(theta) * ramp[:, None], -1, 1)
    light = (1 + strength * slope) / (1 + strength)  # <= 1: PIL's multiply only darkens
    light_img = Image.fromarray((light * 255 + 0.5).astype(np.uint8), "L")
    img = ImageChops.multiply(img, light_img.resize((size, size), Image.BILINEAR).convert("RGB"))
    ox, oy = (int(v) for v in rng.integers(0, size, 2))
    noise = _noise_tile(size).crop((ox, oy, ox + size, oy + size))
    noise = noise.point(_scale_lut(rng.uniform(0, 1), pivot=NOISE_ZERO) * 3)
    return ImageChops.add(img, noise, scale=1.0, offset=-round(NOISE_ZERO))


def render_query(
    product: Product,
    distractor: Product | None,
    size: int,
    quality: tuple[int, int],
    rng: np.random.Generator,
    include_product: bool = True,
) -> QueryRender:
    """A shopper's photo of ``product`` on a real background, with its true box.

    Args:
        product: what the shopper photographs.
        distractor: another product in the frame (beside it, maybe cut by the border).
        size: output side in pixels.
        quality: JPEG quality range (inclusive) to draw from.
        rng: this image's generator.
        include_product: False renders the identical scene without the product (same random
            draws), which lets tests check that the pixels inside the true box are the product.
    """
    img = random_background(rng, size)
    main = _warp(product_sprite(product, size), rng.uniform(*QUERY_SCALE) * size, size, rng)
    x = int(rng.integers(0, size - main.width + 1))
    y = int(rng.integers(0, size - main.height + 1))
    box: Box = (x, y, x + main.width, y + main.height)
    if distractor is not None:
        d_sprite = product_sprite(distractor, size // DISTRACTOR_SPRITE)
        d = _warp(d_sprite, rng.uniform(*DISTRACTOR_SCALE) * size, size, rng)
        img.paste(d, _distractor_xy(box, d.size, size, rng), d)
    shadow = rng.uniform(*QUERY_SHADOW)
    if include_product:
        _shadow(img, main.getchannel("A"), (x, y), shadow)
        img.paste(main, (x, y), main)
    img = img.point(_exposure_lut(rng))
    blur = rng.uniform(0, BLUR_MAX) * size / REFERENCE_SIZE
    if rng.random() < BLUR_PROB:
        img = img.filter(ImageFilter.BoxBlur(blur))
    if rng.random() < MOTION_BLUR_PROB:
        kernel = np.zeros((MOTION_BLUR_TAPS, MOTION_BLUR_TAPS))
        if rng.random() < MOTION_BLUR_HORIZONTAL:
            kernel[MOTION_BLUR_TAPS // 2, :] = 1.0
        else:
            np.fill_diagonal(kernel, 1.0)
        img = img.filter(ImageFilter.Kernel(kernel.shape, kernel.ravel().tolist(), kernel.sum()))
    img = _light_and_noise(img, rng)
    return QueryRender(img, box, int(rng.integers(quality[0], quality[1] + 1)))


def run_job(job: StudioJob | QueryJob, ctx: RenderContext) -> tuple[str, int, Box | None]:
    """Render one job and write its JPEG under ``ctx.root``; returns (kind, index, box)."""
    path = ctx.root / job.rel_path
    if isinstance(job, StudioJob):
        rng = image_rng(ctx.seed, STUDIO_STREAM, job.index)
        img = render_studio(job.product, job.style, ctx.size, rng)
        img.save(path, "JPEG", quality=ctx.studio_quality)
        return "studio", job.index, None
    rng = image_rng(ctx.seed, QUERY_STREAM, job.index)
    shot = render_query(job.product, job.distractor, ctx.size, ctx.query_quality, rng)
    shot.image.save(path, "JPEG", quality=shot.jpeg_quality)
    return "query", job.index, shot.box


def run_chunk(
    jobs: list[StudioJob | QueryJob], ctx: RenderContext
) -> list[tuple[str, int, Box | None]]:
    """Render a chunk of jobs (one task of the process pool)."""
    return [run_job(job, ctx) for job in jobs]
