"""Procedural backgrounds for scene synthesis: noise, stripes, fields of shapes, gradients and
mosaics of other catalog products, drawn on the fly as batched tensors.

Why: a detector trained on a couple of dozen real photos learns *those* photos (their colours,
their textures) and finds nothing on a shopper's sofa it never saw. Endless procedural
backgrounds at many scales make "the product" the only thing that is the same across training
scenes; a mosaic of other products' pieces teaches it that product-like clutter is not the
product either. Real photos stay in the mix (``train.augment.procedural_share``) for real light
and texture statistics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)
from torchvision.ops import roi_align

KINDS = ("noise", "stripes", "shapes", "gradient")  # clutter mosaics are drawn on their own
NOISE_OCTAVES = (2, 4, 8, 16, 32)  # value-noise grid sides, coarse to fine
SHAPES_PER_SCENE = (6, 24)  # shapes drawn per "shapes" background
SHAPE_SIZE = (0.04, 0.35)  # shape half-side, share of the frame
SHAPES_REDUCE = 2  # shapes are drawn at half the side
STRIPE_PERIOD = (0.02, 0.3)  # stripe period, share of the frame
MOSAIC_GRIDS = (2, 3, 4)  # cells per side of a clutter mosaic
CLUTTER_CROP = (0.3, 0.8)  # side of the piece cut from another product, share of its shot


def _colors(n: int, g: torch.Generator) -> torch.Tensor:
    """Random RGB colours ``[n, 3, 1, 1]``, biased away from pure saturation (real surfaces)."""
    base = torch.rand(n, 1, 1, 1, generator=g)
    tint = torch.rand(n, 3, 1, 1, generator=g)
    mix = torch.rand(n, 1, 1, 1, generator=g)
    return base * (1 - mix) + tint * mix


def _grid(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [0, 1], ``[1, 1, size, size]`` each (x, y)."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(c, c, indexing="ij")
    return x.view(1, 1, size, size), y.view(1, 1, size, size)


def value_noise(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Multi-scale value noise (random grids upsampled and summed with random weights) mapped
    between two random colours; one channel is drawn, so it costs a third of RGB noise."""
    t = torch.zeros(n, 1, size, size)
    weights = torch.rand(n, len(NOISE_OCTAVES), generator=g)
    weights = weights / weights.sum(dim=1, keepdim=True)
    for i, side in enumerate(NOISE_OCTAVES):
        coarse = torch.rand(n, 1, side, side, generator=g)
        up = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
        t += weights[:, i].view(n, 1, 1, 1) * up
    # stretch contrast per image so a sum of many octaves is not a flat grey
    lo = t.amin(dim=(1, 2, 3), keepdim=True)
    hi = t.amax(dim=(1, 2, 3), keepdim=True)
    t = ((t - lo) / (hi - lo).clamp(min=1e-3)).clamp(0, 1)
    return _colors(n, g) * t + _colors(n, g) * (1 - t)


def stripes(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Two-colour stripes (hard or soft) at a random angle and period."""
    x, y = _grid(n, size)
    theta = torch.rand(n, 1, 1, 1, generator=g) * math.pi
    lo, hi = STRIPE_PERIOD
    period = lo * (hi / lo) ** torch.rand(n, 1, 1, 1, generator=g)  # log-uniform
    phase = torch.rand(n, 1, 1, 1, generator=g)
    t = (x * torch.cos(theta) + y * torch.sin(theta)) / period + phase
    wave = 0.5 + 0.5 * torch.sin(2 * math.pi * t)
    hard = torch.rand(n, 1, 1, 1, generator=g) < 0.5
    wave = torch.where(hard, (wave > 0.5).float(), wave)
    a, b = _colors(n, g), _colors(n, g)
    return a * wave + b * (1 - wave)


def shapes(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """A field of overlapping filled ellipses and rectangles in random colours.

    Drawn at 1/:data:`SHAPES_REDUCE` of the side and enlarged: each shape costs a pass over
    every pixel, and the scene's blur and JPEG hide the coarser edges.
    """
    small = max(1, size // SHAPES_REDUCE)
    x, y = _grid(n, small)
    out = _colors(n, g).expand(n, 3, small, small).clone()
    count = int(torch.randint(SHAPES_PER_SCENE[0], SHAPES_PER_SCENE[1] + 1, (1,), generator=g))
    for _ in range(count):
        cx, cy = torch.rand(n, 1, 1, 1, generator=g), torch.rand(n, 1, 1, 1, generator=g)
        lo, hi = SHAPE_SIZE
        rx = lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=g)
        ry = lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=g)
        dx, dy = (x - cx) / rx, (y - cy) / ry
        ellipse = dx**2 + dy**2 < 1
        rect = (dx.abs() < 1) & (dy.abs() < 1)
        is_rect = torch.rand(n, 1, 1, 1, generator=g) < 0.5
        mask = torch.where(is_rect, rect, ellipse).float()
        out = out * (1 - mask) + _colors(n, g) * mask
    return F.interpolate(out, size=(size, size), mode="nearest")


def gradients(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """A linear blend between two colours in a random direction (walls, skies, table tops)."""
    x, y = _grid(n, size)
    theta = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    t = (x - 0.5) * torch.cos(theta) + (y - 0.5) * torch.sin(theta) + 0.5
    t = t.clamp(0, 1)
    return _colors(n, g) * t + _colors(n, g) * (1 - t)


def clutter_mosaic(sources: torch.Tensor, n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """A grid of random pieces of other products' shots (``sources`` ``float[M, 3, S, S]``).

    Why: shoppers photograph products among other things; pieces of real catalog products are
    the most product-like clutter we have, and the detector must learn to ignore them.
    """
    k = MOSAIC_GRIDS[int(torch.randint(len(MOSAIC_GRIDS), (1,), generator=g))]
    cell = math.ceil(size / k)
    m = n * k * k
    src_side = sources.shape[-1]
    idx = torch.randint(sources.shape[0], (m,), generator=g)
    side = (
        CLUTTER_CROP[0] + (CLUTTER_CROP[1] - CLUTTER_CROP[0]) * torch.rand(m, generator=g)
    ) * src_side
    x0 = torch.rand(m, generator=g) * (src_side - side)
    y0 = torch.rand(m, generator=g) * (src_side - side)
    rois = torch.stack((idx.float(), x0, y0, x0 + side, y0 + side), dim=1)
    pieces = roi_align(sources, rois, (cell, cell), 1.0, 1, True)  # [m, 3, cell, cell]
    tiles = pieces.view(n, k, k, 3, cell, cell).permute(0, 3, 1, 4, 2, 5)
    return tiles.reshape(n, 3, k * cell, k * cell)[..., :size, :size].contiguous()


DRAWERS = {"noise": value_noise, "stripes": stripes, "shapes": shapes, "gradient": gradients}


def procedural_backgrounds(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """``n`` backgrounds ``float[n, 3, size, size]`` in [0, 1], each of a random :data:`KINDS`."""
    out = torch.empty(n, 3, size, size)
    kind = torch.randint(len(KINDS), (n,), generator=g)
    for i, name in enumerate(KINDS):
        rows = (kind == i).nonzero().flatten()
        if rows.numel():
            out[rows] = DRAWERS[name](rows.numel(), size, g)
    return out
