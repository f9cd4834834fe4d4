"""Studio shot → real shot, on batched tensors, with the product's box as a free label.

Why synthesis: catalog photos are clean (plain backdrop, centred, well lit) and queries are not
(a street or a table behind the product, perspective, blur, bad light, JPEG, another object
beside it). Pasting each catalog product onto a real photograph, on the fly, teaches the
embedding to ignore all that, and because *we* placed the product, its box is known exactly: the
box head is trained jointly at no labelling cost (ground truth never enters training).

Why batched tensor ops: on 2 CPU cores throughput decides quality (docs/measurements.md), so the
whole batch is warped with one ``grid_sample``, blurred with one grouped convolution and
recoloured with broadcast arithmetic; only JPEG runs per image (in libjpeg, fast).

Steps (per batch): cut the product out of its studio shot (:func:`studio_matte`, done once at
load time), draw a background crop from a bank of real photos, warp the product with a random
homography (scale, rotation, perspective, flip), maybe paste a second, softer product beside it
as a distractor, add a contact shadow, then change exposure, contrast, gamma, colour cast and
light fall-off, blur, add noise and JPEG-compress.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)
from torchvision.io import decode_jpeg, encode_jpeg
from torchvision.ops import roi_align

from vsearch.settings import AugmentSettings
from vsearch.training.backgrounds import clutter_mosaic, procedural_backgrounds

ALPHA_SOLID = 0.5  # alpha above which a pixel counts as product (box edges)
MATTE_STRIP = 0.02  # share of the width at each side assumed to be backdrop in studio shots
MATTE_SMOOTH = 3  # px window smoothing the backdrop distance against JPEG noise
SHADOW_RATIO = (0.7, 0.97)  # a uniformly darkened backdrop (pixel / backdrop) is a shadow ...
SHADOW_SPREAD = 0.05  # ... when its channels darken alike (a grey product is darker than this)
MATTE_CLOSE = 2  # dilate/erode steps closing gaps in a product's outline before filling
MATTE_MIN_PART = 0.002  # matte parts smaller than this share of the image are noise
MIN_MATTE_SHARE = 0.01  # mattes smaller than this share of the image fall back to the full image
SHADOW_OFFSET = (0.012, 0.03)  # contact shadow offset (x, y) as a share of the side
SHADOW_BLUR = 0.03  # contact shadow softness, share of the side
SHADOW_INK = 0.08  # shadows are dark grey, not black
SHADOW_REDUCE = 4  # shadows are blurred at 1/4 resolution
HALF_RES_BELOW = 0.5  # products shrunk below this scale are sampled from a half-size copy
MAX_FILL = 0.95  # a warped product never exceeds this share of the frame
DISTRACTOR_OUTSIDE = 0.2  # share of the distractor's height that may leave the frame
BG_SAMPLING = 1  # one bilinear sample per pixel: backgrounds need no anti-aliasing
BG_MIN_CROP = 0.3  # smallest background crop side, share of the photo's shorter side
STUDIO_JITTER = 0.1  # brightness change of clean studio samples (catalogs differ too)


@dataclass(frozen=True)
class Matte:
    """Product cut-outs of studio shots: soft alpha ``uint8[N, 1, S, S]``, boxes ``[N, 4]`` px."""

    alpha: torch.Tensor
    boxes: torch.Tensor


def _spans(mask: torch.Tensor, dim: int) -> torch.Tensor:
    """True between the first and the last True of ``mask`` along ``dim`` (fills holes)."""
    m = mask.to(torch.uint8)
    before = m.cummax(dim=dim).values
    after = m.flip(dim).cummax(dim=dim).values.flip(dim)
    return (before & after).bool()


def mask_boxes(mask: torch.Tensor) -> torch.Tensor:
    """Tight ``[x0, y0, x1, y1]`` (pixels, x1/y1 exclusive) of boolean masks ``[N, H, W]``.

    Empty masks give the full image.
    """
    _, h, w = mask.shape
    cols, rows = mask.any(dim=1), mask.any(dim=2)
    ar_w = torch.arange(w, device=mask.device)
    ar_h = torch.arange(h, device=mask.device)
    big = torch.tensor(10**9, device=mask.device)
    x0 = torch.where(cols, ar_w, big).amin(dim=1)
    x1 = torch.where(cols, ar_w, -1).amax(dim=1) + 1
    y0 = torch.where(rows, ar_h, big).amin(dim=1)
    y1 = torch.where(rows, ar_h, -1).amax(dim=1) + 1
    empty = ~cols.any(dim=1)
    full = torch.tensor([0, 0, w, h], device=mask.device)
    boxes = torch.stack((x0, y0, x1, y1), dim=1)
    return torch.where(empty.unsqueeze(1), full, boxes).float()


def _fill(mask: np.ndarray) -> np.ndarray:
    """Close small gaps in a product's outline, fill what it encloses, drop JPEG specks."""
    from scipy import ndimage

    closed = ndimage.binary_closing(mask, iterations=MATTE_CLOSE, border_value=0)
    filled = ndimage.binary_fill_holes(closed)
    # the smoothing window grew the mask by half its width: take that back
    filled = ndimage.binary_erosion(filled, iterations=MATTE_SMOOTH // 2, border_value=0)
    labels, n = ndimage.label(filled)
    if n > 1:
        sizes = np.bincount(labels.ravel())[1:]
        keep = np.flatnonzero(sizes >= MATTE_MIN_PART * mask.size) + 1
        filled = np.isin(labels, keep)
    return filled


def studio_matte(images: torch.Tensor, threshold: float, chunk: int = 256) -> Matte:
    """Cut products out of studio shots (light, plain backdrop) by their distance to the backdrop.

    Why this heuristic is enough: seller photos put one product on a nearly uniform backdrop
    that may darken from top to bottom, so the backdrop of each *row* is read from the side
    strips; pixels far from it are product. A drop shadow darkens the backdrop evenly across
    channels and is left out (the shopper's own photo gets a shadow of its own). A light product
    (a white mug) differs from the backdrop only at its outline and shading, so whatever the
    outline encloses is filled in.

    Args:
        images: ``uint8[N, 3, S, S]`` studio shots.
        threshold: colour distance (0..1) from the backdrop that counts as product.
        chunk: images per vectorised step (bounds peak memory).

    Returns:
        The soft alpha and the product's tight box; a shot where nothing stands out (or
        everything does) keeps the whole image as the product.
    """
    alphas, boxes = [], []
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].float() / 255.0
        w = x.shape[-1]
        strip = max(2, round(MATTE_STRIP * w))
        left = x[..., :strip].median(dim=-1).values
        right = x[..., -strip:].median(dim=-1).values
        backdrop = torch.maximum(left, right).unsqueeze(-1)  # [n, 3, h, 1]
        smooth = F.avg_pool2d(
            x, MATTE_SMOOTH, stride=1, padding=MATTE_SMOOTH // 2, count_include_pad=False
        )
        dist = (smooth - backdrop).abs().amax(dim=1)
        ratio = smooth / backdrop.clamp(min=1e-3)
        spread = ratio.amax(dim=1) - ratio.amin(dim=1)
        mean_ratio = ratio.mean(dim=1)
        shadow = (spread < SHADOW_SPREAD) & (mean_ratio > SHADOW_RATIO[0])
        shadow &= mean_ratio < SHADOW_RATIO[1]
        mask = ((dist > threshold) & ~shadow).numpy()
        filled = torch.from_numpy(np.stack([_fill(m) for m in mask]))
        share = filled.float().mean(dim=(1, 2))
        bad = (share < MIN_MATTE_SHARE) | (share > 1 - MIN_MATTE_SHARE)
        filled[bad] = True
        soft = F.avg_pool2d(filled.unsqueeze(1).float(), 3, stride=1, padding=1)
        alphas.append((soft * 255).round().to(torch.uint8))
        boxes.append(mask_boxes(filled))
    return Matte(torch.cat(alphas), torch.cat(boxes))


def load_background_bank(side: int, which: str = "training") -> tuple[torch.Tensor, torch.Tensor]:
    """Real photographs shipped inside installed wheels, as one padded float tensor.

    Why these photos: they are the only real photographs available offline (scikit-image and
    scikit-learn bundle them). Training uses the *training* half of
    :mod:`vsearch.assets.photos`' photos; the demo world's shopper photos use the other
    half, so evaluation measures backgrounds the detector never saw (``which="queries"``
    loads that half, for benches that paste held-out scenes).

    Returns:
        ``photos`` ``float[P, 3, H, W]`` in [0, 1] (zero-padded) and ``sizes`` ``[P, 2]``
        (width, height) of each photo's real area.
    """
    from PIL import Image

    from vsearch.assets.photos import photo_bank

    arrays, sizes = [], []
    for img in photo_bank(which):
        scale = side / min(img.size)
        w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
        arrays.append(np.array(img.convert("RGB").resize((w, h), Image.BILINEAR)))
        sizes.append((w, h))
    hmax = max(a.shape[0] for a in arrays)
    wmax = max(a.shape[1] for a in arrays)
    bank = torch.zeros(len(arrays), 3, hmax, wmax)
    for i, a in enumerate(arrays):
        bank[i, :, : a.shape[0], : a.shape[1]] = torch.from_numpy(a).permute(2, 0, 1) / 255.0
    return bank, torch.tensor(sizes, dtype=torch.float32)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def homographies(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """3x3 homographies mapping the 4 points ``dst[b]`` onto ``src[b]`` (``[B, 4, 2]`` each)."""
    b = dst.shape[0]
    x, y = dst[..., 0].double(), dst[..., 1].double()
    u, v = src[..., 0].double(), src[..., 1].double()
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack((x, y, ones, zeros, zeros, zeros, -u * x, -u * y), dim=-1)
    rows_v = torch.stack((zeros, zeros, zeros, x, y, ones, -v * x, -v * y), dim=-1)
    a = torch.cat((rows_u, rows_v), dim=1)  # [B, 8, 8]
    rhs = torch.cat((u, v), dim=1).unsqueeze(-1)
    h = torch.linalg.solve(a, rhs).squeeze(-1)
    return torch.cat((h, torch.ones(b, 1, dtype=h.dtype)), dim=1).view(b, 3, 3).float()


def warp(sources: torch.Tensor, inv_h: torch.Tensor, size: int) -> torch.Tensor:
    """Sample ``sources`` ``[B, C, H, W]`` at ``inv_h`` (scene px → source px) into ``size``²."""
    _, _, hs, ws = sources.shape
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    pts = torch.stack((gx, gy, torch.ones_like(gx)), dim=-1).view(1, -1, 3)
    mapped = pts @ inv_h.transpose(1, 2)  # [B, size*size, 3]
    z = mapped[..., 2:]
    z = torch.where(z.abs() < 1e-8, torch.full_like(z, 1e-8), z)  # w may be negative: keep sign
    xy = mapped[..., :2] / z
    grid = torch.stack((2 * xy[..., 0] / ws - 1, 2 * xy[..., 1] / hs - 1), dim=-1)
    grid = grid.view(-1, size, size, 2)
    return F.grid_sample(sources, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Blur each image with its own ``sigma`` (0 = unchanged) in one grouped convolution."""
    b, c, h, w = images.shape
    radius = max(1, math.ceil(3 * max_sigma))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype)
    s = sigma.clamp(min=1e-3).view(b, 1)
    k = torch.exp(-0.5 * (t.view(1, -1) / s) ** 2)
    k = k / k.sum(dim=1, keepdim=True)
    k = k.repeat_interleave(c, dim=0)  # [b*c, taps]
    x = images.reshape(1, b * c, h, w)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(b * c, 1, 1, -1), groups=b * c)
    x = F.conv2d(x, k.view(b * c, 1, -1, 1), groups=b * c)
    return x.view(b, c, h, w)


def jpeg(images: torch.Tensor, quality: torch.Tensor, groups: int) -> torch.Tensor:
    """JPEG-compress ``float[B, 3, H, W]`` images; ``quality <= 0`` leaves an image untouched.

    Qualities are rounded to ``groups`` levels so one libjpeg call handles a group.
    """
    out = images.clone()
    todo = (quality > 0).nonzero().flatten()
    if todo.numel() == 0:
        return out
    q = quality[todo]
    levels = torch.linspace(float(q.min()), float(q.max()), groups) if groups > 1 else q[:1]
    level_of = (q.view(-1, 1) - levels.view(1, -1)).abs().argmin(dim=1)
    u8 = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    for li in level_of.unique().tolist():
        rows = todo[level_of == li]
        encoded = encode_jpeg([u8[i] for i in rows.tolist()], quality=int(levels[li]))
        decoded = decode_jpeg(encoded)
        out[rows] = torch.stack(decoded).float() / 255.0
    return out


@dataclass(frozen=True)
class Scenes:
    """Synthesised shots: ``images`` ``float[B, 3, S, S]`` and ``boxes`` normalised xyxy."""

    images: torch.Tensor
    boxes: torch.Tensor


class SceneSynthesizer:
    """Makes real-shot-like scenes from studio shots (see the module docstring).

    Args:
        settings: the ``train.augment`` section.
        size: side of the produced scenes (the model's ``input_size``).
        bank: background photos and their sizes from :func:`load_background_bank`.
    """

    def __init__(
        self, settings: AugmentSettings, size: int, bank: tuple[torch.Tensor, torch.Tensor]
    ) -> None:
        self.s = settings
        self.size = size
        self.photos, self.photo_sizes = bank

    # -- pieces ------------------------------------------------------------------------------
    def backgrounds(
        self, n: int, g: torch.Generator, clutter: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Backgrounds of ``n`` scenes: a ``procedural_share`` drawn procedurally (of those, a
        ``clutter_share`` as mosaics of pieces of the ``clutter`` shots, when given), the rest
        random square crops (maybe mirrored) of random bank photos."""
        s = self.s
        out = self.photo_backgrounds(n, g)
        if s.procedural_share == 0:  # draw nothing more: the random stream stays as it was
            return out
        drawn = torch.rand(n, generator=g) < s.procedural_share
        if drawn.any():
            rows = drawn.nonzero().flatten()
            out[rows] = procedural_backgrounds(rows.numel(), self.size, g)
            mosaic = torch.rand(rows.numel(), generator=g) < s.clutter_share
            if clutter is not None and mosaic.any():
                out[rows[mosaic]] = clutter_mosaic(clutter, int(mosaic.sum()), self.size, g)
        return out

    def photo_backgrounds(self, n: int, g: torch.Generator) -> torch.Tensor:
        """Random square crops (maybe mirrored) of random bank photos."""
        idx = torch.randint(len(self.photos), (n,), generator=g)
        wh = self.photo_sizes[idx]
        side = _uniform(n, BG_MIN_CROP, 1.0, g) * wh.min(dim=1).values
        x0 = torch.rand(n, generator=g) * (wh[:, 0] - side)
        y0 = torch.rand(n, generator=g) * (wh[:, 1] - side)
        rois = torch.stack((idx.float(), x0, y0, x0 + side, y0 + side), dim=1)
        crops = roi_align(self.photos, rois, (self.size, self.size), 1.0, BG_SAMPLING, True)
        flip = torch.rand(n, generator=g) < 0.5
        crops[flip] = crops[flip].flip(-1)
        return crops

    def _quads(
        self, boxes: torch.Tensor, longest: torch.Tensor, flip: torch.Tensor, g: torch.Generator
    ) -> torch.Tensor:
        """Where the corners of each source box land (scene px, top-left at the origin)."""
        n = boxes.shape[0]
        s = self.s
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        scale = longest / torch.maximum(w, h).clamp(min=1.0)
        corners = torch.stack(
            (
                torch.stack((-w / 2, -h / 2), dim=1),
                torch.stack((w / 2, -h / 2), dim=1),
                torch.stack((w / 2, h / 2), dim=1),
                torch.stack((-w / 2, h / 2), dim=1),
            ),
            dim=1,
        )  # [n, 4, 2]
        corners = corners * scale.view(n, 1, 1)
        corners[..., 0] = torch.where(flip.view(n, 1), -corners[..., 0], corners[..., 0])
        angle = torch.deg2rad(
            (torch.randn(n, generator=g) * s.rotate_std).clamp(-s.rotate_max, s.rotate_max)
        )
        cos, sin = torch.cos(angle).view(n, 1), torch.sin(angle).view(n, 1)
        rx = corners[..., 0] * cos - corners[..., 1] * sin
        ry = corners[..., 0] * sin + corners[..., 1] * cos
        quad = torch.stack((rx, ry), dim=-1)
        extent = quad.amax(dim=1) - quad.amin(dim=1)  # [n, 2]
        jitter = (torch.rand(n, 4, 2, generator=g) * 2 - 1) * s.perspective
        quad = quad + jitter * extent.view(n, 1, 2)
        quad = quad - quad.amin(dim=1, keepdim=True)
        extent = quad.amax(dim=1)
        shrink = (MAX_FILL * self.size / extent.amax(dim=1).clamp(min=1.0)).clamp(max=1.0)
        return quad * shrink.view(n, 1, 1)

    def _paste_sources(self, rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Premultiplied RGB + alpha, the layout :func:`warp` samples (no dark fringes)."""
        return torch.cat((rgb * alpha, alpha), dim=1)

    def _warp_products(
        self,
        sources: torch.Tensor,
        boxes: torch.Tensor,
        quads: torch.Tensor,
        offsets: torch.Tensor,
        half: torch.Tensor,
    ) -> torch.Tensor:
        """Warp each product's box onto its quad placed at ``offsets`` (scene px)."""
        n = sources.shape[0]
        src_pts = torch.stack(
            (
                boxes[:, [0, 1]],
                boxes[:, [2, 1]],
                boxes[:, [2, 3]],
                boxes[:, [0, 3]],
            ),
            dim=1,
        )
        dst = quads + offsets.view(n, 1, 2)
        inv_h = homographies(dst, src_pts)
        out = torch.empty(n, sources.shape[1], self.size, self.size)
        full = ~half
        if full.any():
            out[full] = warp(sources[full], inv_h[full], self.size)
        if half.any():
            # Sampling a strongly shrunk product from a box-filtered half-size copy avoids the
            # aliasing a bilinear grid sample gives. Source-pixel homographies scale by 1/2.
            small = F.avg_pool2d(sources[half], 2)
            to_half = torch.diag(torch.tensor([0.5, 0.5, 1.0]))
            out[half] = warp(small, to_half @ inv_h[half], self.size)
        return out

    def _shadow(self, alpha: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        """A soft, offset copy of the product's alpha scaled by ``strength`` (``[B, 1, S, S]``).

        Blurred at 1/``SHADOW_REDUCE`` resolution: a soft shadow has no detail to lose and a wide
        blur at full size would cost more than the rest of the synthesis.
        """
        size = self.size
        dx = round(SHADOW_OFFSET[0] * size)
        dy = round(SHADOW_OFFSET[1] * size)
        shifted = F.pad(alpha, (dx, 0, dy, 0))[..., :size, :size]
        small = F.avg_pool2d(shifted, SHADOW_REDUCE)
        k = max(3, 2 * round(SHADOW_BLUR * size / SHADOW_REDUCE) + 1)
        small = F.avg_pool2d(small, k, stride=1, padding=k // 2, count_include_pad=False)
        soft = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
        return soft * strength.view(-1, 1, 1, 1)

    def photometric(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Exposure, contrast, gamma, colour cast, uneven light, blur, noise, JPEG."""
        s = self.s
        n, size = images.shape[0], self.size

        def per(lo_hi: tuple[float, float]) -> torch.Tensor:
            return _uniform(n, *lo_hi, g).view(n, 1, 1, 1)

        x = (images - 0.5) * per(s.contrast) + 0.5
        x = (x * per(s.brightness)).clamp(1e-4, 1.0) ** per(s.gamma)
        cast = 1 + (torch.rand(n, 3, 1, 1, generator=g) * 2 - 1) * s.color_cast
        x = x * cast
        theta = torch.rand(n, generator=g) * 2 * math.pi
        ramp = torch.linspace(-1, 1, size)
        strength = torch.rand(n, generator=g) * s.light_gradient
        light = 1 + strength.view(n, 1, 1) * (
            torch.cos(theta).view(n, 1, 1) * ramp.view(1, 1, size)
            + torch.sin(theta).view(n, 1, 1) * ramp.view(1, size, 1)
        )
        x = (x * light.unsqueeze(1)).clamp(0, 1)
        sigma = _uniform(n, *s.blur_sigma, g)
        blurred = torch.rand(n, generator=g) < s.blur_prob
        if blurred.any():
            x[blurred] = gaussian_blur(x[blurred], sigma[blurred], s.blur_sigma[1])
        noise = per(s.noise_std) * torch.randn(x.shape, generator=g)
        x = (x + noise).clamp(0, 1)
        lo, hi = s.jpeg_quality
        quality = torch.randint(lo, hi + 1, (n,), generator=g)
        quality[torch.rand(n, generator=g) >= s.jpeg_prob] = 0
        return jpeg(x, quality, s.jpeg_groups)

    # -- public ------------------------------------------------------------------------------
    def scenes(
        self,
        rgb: torch.Tensor,
        alpha: torch.Tensor,
        boxes: torch.Tensor,
        g: torch.Generator,
        distractors: torch.Tensor | None = None,
    ) -> Scenes:
        """Paste studio products onto real backgrounds.

        Args:
            rgb: ``float[B, 3, S, S]`` studio shots in [0, 1].
            alpha: ``float[B, 1, S, S]`` their mattes in [0, 1].
            boxes: ``[B, 4]`` the mattes' tight boxes in pixels.
            g: the random generator (seeded by the caller: same seed, same scenes).
            distractors: for each scene, the index (into this batch) of the product shown
                beside it, or -1 for none; ``None`` draws them (another product of the batch).

        Returns:
            The scenes and the pasted product's tight box, normalised xyxy.
        """
        s, n, size = self.s, rgb.shape[0], self.size
        sources = self._paste_sources(rgb, alpha)
        scene = self.backgrounds(n, g, rgb)

        # Main product geometry (drawn first so the distractor can be placed beside it).
        longest = _uniform(n, *s.scale, g) * size
        flip = torch.rand(n, generator=g) < s.flip_prob
        quads = self._quads(boxes, longest, flip, g)
        extent = quads.amax(dim=1)
        offsets = torch.rand(n, 2, generator=g) * (size - extent).clamp(min=0)
        src_side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        half = longest / src_side.clamp(min=1.0) < HALF_RES_BELOW

        if distractors is None:
            shift = 1 + torch.randint(max(1, n - 1), (1,), generator=g)
            distractors = (torch.arange(n) + shift) % n
            distractors[torch.rand(n, generator=g) >= s.distractor_prob] = -1
            if n == 1:
                distractors[:] = -1
        has_d = distractors >= 0
        if has_d.any():
            d_idx = distractors[has_d]
            m = int(has_d.sum())
            d_long = _uniform(m, *s.distractor_scale, g) * size
            d_flip = torch.rand(m, generator=g) < s.flip_prob
            d_quads = self._quads(boxes[d_idx], d_long, d_flip, g)
            d_ext = d_quads.amax(dim=1)
            main_x0 = offsets[has_d, 0]
            main_x1 = main_x0 + extent[has_d, 0]
            overlap = torch.rand(m, generator=g) * s.distractor_overlap * d_ext[:, 0]
            left = main_x0 > size - main_x1
            dx = torch.where(left, main_x0 - d_ext[:, 0] + overlap, main_x1 - overlap)
            dy_lo = -DISTRACTOR_OUTSIDE * d_ext[:, 1]
            dy_hi = size - (1 - DISTRACTOR_OUTSIDE) * d_ext[:, 1]
            dy = dy_lo + torch.rand(m, generator=g) * (dy_hi - dy_lo)
            # Distractors are softer than the product (out of focus, often further away).
            d_warp = self._warp_products(
                sources[d_idx],
                boxes[d_idx],
                d_quads,
                torch.stack((dx, dy), dim=1),
                torch.ones(m, dtype=torch.bool),
            )
            a = d_warp[:, 3:]
            scene[has_d] = scene[has_d] * (1 - a) + d_warp[:, :3]

        main = self._warp_products(sources, boxes, quads, offsets, half)
        a = main[:, 3:]
        shadow = self._shadow(a, _uniform(n, *s.shadow, g))
        scene = scene * (1 - shadow) + SHADOW_INK * shadow
        scene = scene * (1 - a) + main[:, :3]
        box_px = mask_boxes(a[:, 0] > ALPHA_SOLID)
        scene = self.photometric(scene.clamp(0, 1), g)
        return Scenes(scene, box_px / size)

    def studio(self, rgb: torch.Tensor, boxes: torch.Tensor, g: torch.Generator) -> Scenes:
        """Clean catalog shots as indexed (maybe mirrored, slightly re-exposed), with boxes."""
        n, size = rgb.shape[0], rgb.shape[-1]
        flip = torch.rand(n, generator=g) < self.s.flip_prob
        out = rgb.clone()
        out[flip] = out[flip].flip(-1)
        b = boxes.clone() / size
        b[flip, 0], b[flip, 2] = 1 - boxes[flip, 2] / size, 1 - boxes[flip, 0] / size
        gain = 1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * STUDIO_JITTER
        return Scenes((out * gain).clamp(0, 1), b)


def jitter_boxes(boxes: torch.Tensor, amount: float, g: torch.Generator) -> torch.Tensor:
    """Shift and rescale normalised boxes a little, so the embedding tolerates detection error."""
    if amount <= 0:
        return boxes
    n = boxes.shape[0]
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + (torch.rand(n, generator=g) * 2 - 1) * amount * w
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + (torch.rand(n, generator=g) * 2 - 1) * amount * h
    w = w * torch.exp((torch.rand(n, generator=g) * 2 - 1) * amount)
    h = h * torch.exp((torch.rand(n, generator=g) * 2 - 1) * amount)
    out = torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=1).clamp(0, 1)
    too_small = (out[:, 2] - out[:, 0] < 1e-2) | (out[:, 3] - out[:, 1] < 1e-2)
    return torch.where(too_small.unsqueeze(1), boxes, out)


def loosen_boxes(boxes: torch.Tensor, grow: float, g: torch.Generator) -> torch.Tensor:
    """Grow each side of normalised boxes by its own random 0..``grow`` share of the box's side.

    Why: a shopper's box (or a whole-frame query) is rarely tight; training the embedding on
    crops with some context around the product makes a loose box cost little instead of a lot.
    """
    n = boxes.shape[0]
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    amount = torch.rand(n, 4, generator=g) * grow
    side = torch.stack((w, h, w, h), dim=1)
    sign = torch.tensor([-1.0, -1.0, 1.0, 1.0])
    return (boxes + sign * amount * side).clamp(0, 1)


def training_crop_boxes(
    boxes: torch.Tensor, studio: torch.Tensor, s: AugmentSettings, g: torch.Generator
) -> torch.Tensor:
    """Where the embedding's training crops are cut, from the true normalised ``boxes``.

    Each crop is jittered (detection error), or with ``box_loose_prob`` loose (a user's box);
    a ``studio_full_frame_prob`` share of the studio shots (``studio`` marks them) is the whole
    frame, as a shopper who photographs or selects a listing photo without drawing a box.
    """
    n = boxes.shape[0]
    jittered = jitter_boxes(boxes, s.box_jitter, g)
    loose = loosen_boxes(boxes, s.box_loose_grow, g)
    out = torch.where((torch.rand(n, generator=g) < s.box_loose_prob).unsqueeze(1), loose, jittered)
    full = studio & (torch.rand(n, generator=g) < s.studio_full_frame_prob)
    return torch.where(full.unsqueeze(1), torch.tensor([0.0, 0.0, 1.0, 1.0]), out)
