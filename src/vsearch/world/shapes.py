"""Product silhouettes and logo glyphs, drawn procedurally in unit coordinates.

Why procedural drawing: the demo world needs thousands of distinct, fine-grained products with
no image download. Each category has its own outline (a shoe never looks like a mug) and a few
shape variants per category, so look-alikes can differ by shape alone.

A silhouette is a *label map*: every pixel says which part of the product it belongs to (body,
accent trim, dark glass, light parts, metal). Parts drawn later cover earlier ones, so handles,
soles and lenses occlude the body like real parts do. The map is drawn at ``SUPERSAMPLE`` times
the target size and box-filtered down, which gives anti-aliased part coverage for free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

# Part roles (label values in the map). 0 is "not the product".
BG, BODY, ACCENT, DARK, LIGHT, METAL = range(6)
ROLES: tuple[int, ...] = (BODY, ACCENT, DARK, LIGHT, METAL)

SUPERSAMPLE = 2  # label map drawn at 2x and averaged down: anti-aliased edges
VARIANTS = 4  # shape variants per category

CATEGORIES: tuple[str, ...] = (
    "shoe",
    "handbag",
    "t-shirt",
    "dress",
    "hat",
    "watch",
    "bottle",
    "mug",
    "chair",
    "lamp",
    "phone",
    "sunglasses",
)

GLYPHS: tuple[str, ...] = (
    "star",
    "ring",
    "cross",
    "diamond",
    "triangle",
    "bolt",
    "heart",
    "crescent",
    "square",
    "chevron",
    "trio",
    "arrow",
)

Point = tuple[float, float]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Silhouette:
    """Anti-aliased part coverages of one (category, variant) at one pixel size.

    Attributes:
        masks: role -> float32 [size, size] coverage in 0..1 (parts do not overlap).
        edges: float32 [size, size], 1 on outlines and part seams (drawn darker: product look).
        logo: where the printed glyph goes, (cx, cy, radius) in unit coordinates.
    """

    masks: dict[int, np.ndarray]
    edges: np.ndarray
    logo: tuple[float, float, float]
    alpha: np.ndarray  # total product coverage (0..1)


def chaikin(points: Sequence[Point], iterations: int = 3) -> list[Point]:
    """Round a closed control polygon by corner cutting (organic outlines from few points)."""
    p = np.asarray(points, dtype=np.float64)
    for _ in range(iterations):
        nxt = np.roll(p, -1, axis=0)
        p = np.stack([0.75 * p + 0.25 * nxt, 0.25 * p + 0.75 * nxt], axis=1).reshape(-1, 2)
    return [(float(x), float(y)) for x, y in p]


class _Canvas:
    """A label-map painter whose coordinates are fractions of the canvas side."""

    def __init__(self, px: int) -> None:
        self.px = px
        self.img = Image.new("L", (px, px), BG)
        self.draw = ImageDraw.Draw(self.img)

    def _xy(self, pts: Sequence[Point]) -> list[Point]:
        return [(x * self.px, y * self.px) for x, y in pts]

    def _box(self, box: Box) -> list[float]:
        return [v * self.px for v in box]

    def poly(self, role: int, pts: Sequence[Point], smooth: bool = False) -> None:
        self.draw.polygon(self._xy(chaikin(pts) if smooth else pts), fill=role)

    def ellipse(self, role: int, box: Box) -> None:
        self.draw.ellipse(self._box(box), fill=role)

    def rect(self, role: int, box: Box, radius: float = 0.0) -> None:
        if radius > 0:
            self.draw.rounded_rectangle(self._box(box), radius=radius * self.px, fill=role)
        else:
            self.draw.rectangle(self._box(box), fill=role)

    def line(self, role: int, pts: Sequence[Point], width: float) -> None:
        w = max(1, round(width * self.px))
        self.draw.line(self._xy(pts), fill=role, width=w, joint="curve")
        r = w / 2  # round caps so thick strokes end cleanly
        for x, y in self._xy([pts[0], pts[-1]]):
            self.draw.ellipse([x - r, y - r, x + r, y + r], fill=role)

    def arc(self, role: int, box: Box, start: float, end: float, width: float) -> None:
        self.draw.arc(self._box(box), start, end, fill=role, width=max(1, round(width * self.px)))


# --- categories: each draws variant v and returns the logo spot (cx, cy, r) -----------------
# Coordinates are data (fractions of the canvas), kept one shape per line for reading.
# fmt: off


def _shoe(c: _Canvas, v: int) -> tuple[float, float, float]:
    if v == 0:  # low-top sneaker
        c.poly(BODY, [(0.1, 0.7), (0.1, 0.46), (0.24, 0.4), (0.42, 0.44), (0.6, 0.52),
                      (0.82, 0.55), (0.92, 0.63), (0.92, 0.7)], smooth=True)
        c.line(ACCENT, [(0.34, 0.44), (0.5, 0.5), (0.62, 0.53)], 0.035)
        c.rect(LIGHT, (0.07, 0.66, 0.95, 0.76), radius=0.04)
        return 0.3, 0.56, 0.055
    if v == 1:  # high-top
        c.poly(BODY, [(0.12, 0.72), (0.1, 0.22), (0.36, 0.18), (0.42, 0.46), (0.62, 0.52),
                      (0.84, 0.56), (0.93, 0.64), (0.92, 0.72)], smooth=True)
        c.rect(ACCENT, (0.09, 0.2, 0.37, 0.29), radius=0.03)
        c.rect(LIGHT, (0.07, 0.68, 0.95, 0.78), radius=0.04)
        return 0.27, 0.48, 0.06
    if v == 2:  # ankle boot
        c.poly(BODY, [(0.14, 0.74), (0.13, 0.12), (0.44, 0.12), (0.46, 0.5), (0.7, 0.55),
                      (0.88, 0.6), (0.9, 0.74)])
        c.rect(ACCENT, (0.12, 0.1, 0.46, 0.18))
        c.rect(DARK, (0.1, 0.72, 0.93, 0.82), radius=0.02)
        return 0.3, 0.42, 0.06
    # heeled pump
    c.poly(BODY, [(0.12, 0.5), (0.18, 0.36), (0.3, 0.42), (0.5, 0.58), (0.72, 0.6),
                  (0.9, 0.64), (0.92, 0.7), (0.6, 0.72), (0.3, 0.62), (0.2, 0.6)], smooth=True)
    c.poly(DARK, [(0.14, 0.52), (0.24, 0.58), (0.22, 0.86), (0.17, 0.86)])
    c.line(ACCENT, [(0.3, 0.45), (0.5, 0.6)], 0.03)
    return 0.62, 0.64, 0.045


def _handbag(c: _Canvas, v: int) -> tuple[float, float, float]:
    if v == 0:  # tote with two handles
        c.arc(ACCENT, (0.26, 0.12, 0.48, 0.6), 180, 360, 0.035)
        c.arc(ACCENT, (0.52, 0.12, 0.74, 0.6), 180, 360, 0.035)
        c.poly(BODY, [(0.18, 0.36), (0.82, 0.36), (0.9, 0.86), (0.1, 0.86)])
        return 0.5, 0.6, 0.08
    if v == 1:  # satchel: one arch handle, flap, buckle
        c.arc(ACCENT, (0.3, 0.12, 0.7, 0.66), 180, 360, 0.045)
        c.rect(BODY, (0.14, 0.38, 0.86, 0.86), radius=0.07)
        c.poly(ACCENT, [(0.14, 0.4), (0.86, 0.4), (0.86, 0.56), (0.5, 0.62), (0.14, 0.56)])
        c.rect(METAL, (0.46, 0.56, 0.54, 0.64), radius=0.01)
        return 0.5, 0.74, 0.07
    if v == 2:  # clutch: wide, triangular flap, clasp
        c.rect(BODY, (0.08, 0.36, 0.92, 0.72), radius=0.04)
        c.poly(ACCENT, [(0.08, 0.37), (0.92, 0.37), (0.5, 0.6)])
        c.ellipse(METAL, (0.46, 0.55, 0.54, 0.63))
        return 0.26, 0.6, 0.06
    # bucket bag with a long strap and drawstring band
    c.line(ACCENT, [(0.3, 0.34), (0.5, 0.06), (0.7, 0.34)], 0.025)
    c.poly(BODY, [(0.26, 0.3), (0.74, 0.3), (0.78, 0.82), (0.7, 0.9), (0.3, 0.9), (0.22, 0.82)],
           smooth=True)
    c.rect(ACCENT, (0.25, 0.3, 0.75, 0.37))
    return 0.5, 0.6, 0.08


def _tshirt(c: _Canvas, v: int) -> tuple[float, float, float]:
    if v == 3:  # tank top
        c.poly(BODY, [(0.32, 0.1), (0.4, 0.1), (0.44, 0.24), (0.56, 0.24), (0.6, 0.1),
                      (0.68, 0.1), (0.7, 0.36), (0.74, 0.9), (0.26, 0.9), (0.3, 0.36)])
        c.rect(ACCENT, (0.26, 0.84, 0.74, 0.9))
        return 0.5, 0.45, 0.07
    sleeve = [(0.9, 0.3), (0.8, 0.44)] if v != 2 else [(0.97, 0.74), (0.86, 0.78)]
    c.poly(BODY, [(0.3, 0.14), (0.42, 0.11), (0.5, 0.16), (0.58, 0.11), (0.7, 0.14), *sleeve,
                  (0.72, 0.36), (0.72, 0.9), (0.28, 0.9), (0.28, 0.36),
                  *[(1 - x, y) for x, y in reversed(sleeve)]])
    if v == 1:  # v-neck: a deep V cut into the outline, trimmed
        c.poly(BG, [(0.4, 0.08), (0.6, 0.08), (0.5, 0.34)])
        c.line(ACCENT, [(0.4, 0.12), (0.5, 0.34), (0.6, 0.12)], 0.025)
    else:  # crew neck
        c.arc(ACCENT, (0.41, 0.04, 0.59, 0.2), 10, 170, 0.025)
    return 0.5, 0.46, 0.08


def _dress(c: _Canvas, v: int) -> tuple[float, float, float]:
    top = [(0.38, 0.08), (0.44, 0.1), (0.56, 0.1), (0.62, 0.08), (0.64, 0.38)]
    if v == 0:  # A-line with belt
        c.poly(BODY, [*top, (0.84, 0.9), (0.16, 0.9), (0.36, 0.38)])
        c.rect(ACCENT, (0.35, 0.36, 0.65, 0.42))
    elif v == 1:  # sheath
        c.poly(BODY, [*top, (0.6, 0.44), (0.66, 0.9), (0.34, 0.9), (0.4, 0.44), (0.36, 0.38)],
               smooth=True)
        c.line(ACCENT, [(0.5, 0.1), (0.5, 0.9)], 0.015)
    elif v == 2:  # maxi with short sleeves
        c.poly(BODY, [(0.26, 0.12), (0.38, 0.08), (0.5, 0.12), (0.62, 0.08), (0.74, 0.12),
                      (0.78, 0.26), (0.66, 0.26), (0.64, 0.4), (0.8, 0.95), (0.2, 0.95),
                      (0.36, 0.4), (0.34, 0.26), (0.22, 0.26)])
        c.rect(ACCENT, (0.2, 0.88, 0.8, 0.95))
    else:  # mermaid: narrow to the knee, flared hem
        c.poly(BODY, [*top, (0.62, 0.66), (0.82, 0.92), (0.18, 0.92), (0.38, 0.66),
                      (0.36, 0.38)], smooth=True)
        c.rect(ACCENT, (0.36, 0.62, 0.64, 0.67))
    return 0.5, 0.24, 0.06


def _hat(c: _Canvas, v: int) -> tuple[float, float, float]:
    if v == 0:  # baseball cap, brim to the right
        c.poly(ACCENT, [(0.55, 0.6), (0.95, 0.66), (0.92, 0.72), (0.55, 0.7)], smooth=True)
        c.poly(BODY, [(0.12, 0.7), (0.14, 0.4), (0.3, 0.22), (0.5, 0.2), (0.68, 0.3),
                      (0.76, 0.5), (0.74, 0.7)], smooth=True)
        c.ellipse(ACCENT, (0.43, 0.17, 0.51, 0.24))
        return 0.44, 0.48, 0.08
    if v == 1:  # fedora
        c.ellipse(BODY, (0.04, 0.56, 0.96, 0.76))
        c.poly(BODY, [(0.28, 0.66), (0.3, 0.28), (0.44, 0.24), (0.5, 0.3), (0.56, 0.24),
                      (0.7, 0.28), (0.72, 0.66)])
        c.rect(ACCENT, (0.28, 0.52, 0.72, 0.6))
        return 0.5, 0.4, 0.07
    if v == 2:  # beanie with pom-pom
        c.ellipse(BODY, (0.2, 0.22, 0.8, 0.9))
        c.rect(ACCENT, (0.18, 0.62, 0.82, 0.82), radius=0.03)
        c.ellipse(ACCENT, (0.42, 0.1, 0.58, 0.26))
        return 0.5, 0.72, 0.06
    # bucket hat
    c.poly(BODY, [(0.08, 0.74), (0.26, 0.56), (0.3, 0.26), (0.7, 0.26), (0.74, 0.56),
                  (0.92, 0.74), (0.5, 0.8)], smooth=True)
    c.line(ACCENT, [(0.25, 0.56), (0.75, 0.56)], 0.03)
    return 0.5, 0.42, 0.07


def _watch(c: _Canvas, v: int) -> tuple[float, float, float]:
    half = {0: 0.1, 1: 0.1, 2: 0.13, 3: 0.06}[v]  # strap half-width
    c.rect(BODY, (0.5 - half, 0.03, 0.5 + half, 0.97), radius=0.03)
    if v == 0:  # round classic
        c.ellipse(METAL, (0.26, 0.26, 0.74, 0.74))
        c.ellipse(LIGHT, (0.31, 0.31, 0.69, 0.69))
    elif v == 1:  # square
        c.rect(METAL, (0.28, 0.26, 0.72, 0.74), radius=0.06)
        c.rect(LIGHT, (0.32, 0.3, 0.68, 0.7), radius=0.04)
    elif v == 2:  # sport: wide bezel, dark dial
        c.ellipse(ACCENT, (0.2, 0.2, 0.8, 0.8))
        c.ellipse(DARK, (0.28, 0.28, 0.72, 0.72))
    else:  # slim
        c.ellipse(METAL, (0.32, 0.32, 0.68, 0.68))
        c.ellipse(LIGHT, (0.36, 0.36, 0.64, 0.64))
    hands = METAL if v == 2 else DARK
    c.line(hands, [(0.5, 0.5), (0.5, 0.38)], 0.018)
    c.line(hands, [(0.5, 0.5), (0.6, 0.55)], 0.018)
    c.rect(METAL, (0.74, 0.47, 0.79, 0.53) if v != 3 else (0.68, 0.47, 0.72, 0.53))  # crown
    return 0.5, 0.61, 0.045


def _bottle(c: _Canvas, v: int) -> tuple[float, float, float]:
    if v == 0:  # water bottle
        c.rect(BODY, (0.32, 0.22, 0.68, 0.93), radius=0.07)
        c.rect(BODY, (0.42, 0.12, 0.58, 0.24))
        c.rect(ACCENT, (0.4, 0.05, 0.6, 0.13), radius=0.02)
        return 0.5, 0.58, 0.09
    if v == 1:  # wine bottle with a label
        c.poly(BODY, [(0.44, 0.05), (0.56, 0.05), (0.56, 0.3), (0.66, 0.42), (0.66, 0.94),
                      (0.34, 0.94), (0.34, 0.42), (0.44, 0.3)])
        c.rect(ACCENT, (0.435, 0.04, 0.565, 0.14))
        c.rect(LIGHT, (0.35, 0.56, 0.65, 0.8))
        return 0.5, 0.68, 0.07
    if v == 2:  # round flask
        c.ellipse(BODY, (0.2, 0.32, 0.8, 0.92))
        c.rect(BODY, (0.43, 0.18, 0.57, 0.36))
        c.rect(ACCENT, (0.41, 0.1, 0.59, 0.19), radius=0.02)
        return 0.5, 0.62, 0.1
    # sports bottle: waisted body, sport cap with loop
    c.poly(BODY, [(0.32, 0.24), (0.68, 0.24), (0.64, 0.56), (0.7, 0.93), (0.3, 0.93),
                  (0.36, 0.56)], smooth=True)
    c.arc(ACCENT, (0.52, 0.04, 0.68, 0.18), 200, 120, 0.025)
    c.rect(ACCENT, (0.38, 0.12, 0.62, 0.26), radius=0.03)
    return 0.5, 0.74, 0.08


def _mug(c: _Canvas, v: int) -> tuple[float, float, float]:
    if v == 2:  # espresso cup on a saucer
        c.ellipse(ACCENT, (0.1, 0.7, 0.9, 0.82))
        c.arc(BODY, (0.54, 0.44, 0.78, 0.66), 270, 90, 0.04)
        c.poly(BODY, [(0.28, 0.4), (0.64, 0.4), (0.6, 0.7), (0.32, 0.7)])
        c.ellipse(ACCENT, (0.28, 0.37, 0.64, 0.43))
        return 0.46, 0.54, 0.07
    x0, y0, x1, y1 = {0: (0.2, 0.28, 0.68, 0.84), 1: (0.28, 0.12, 0.64, 0.9),
                      3: (0.22, 0.24, 0.7, 0.86)}[v]
    c.arc(BODY, (x1 - 0.08, y0 + 0.1, x1 + 0.2, y1 - 0.14), 270, 90, 0.05)  # handle
    if v == 3:  # tapered
        c.poly(BODY, [(x0 - 0.04, y0), (x1 + 0.02, y0), (x1 - 0.04, y1), (x0 + 0.04, y1)])
        c.rect(ACCENT, (x0 - 0.04, y0, x1 + 0.02, y0 + 0.05))
    else:
        c.rect(BODY, (x0, y0, x1, y1), radius=0.03)
        c.rect(ACCENT, (x0, y0, x1, y0 + 0.05))
    return (x0 + x1) / 2, (y0 + y1) / 2 + 0.04, 0.08


def _chair(c: _Canvas, v: int) -> tuple[float, float, float]:
    if v == 0:  # dining chair
        for x in (0.3, 0.7):
            c.line(METAL, [(x, 0.6), (x, 0.94)], 0.035)
        c.rect(BODY, (0.3, 0.06, 0.7, 0.5), radius=0.06)
        c.rect(ACCENT, (0.24, 0.5, 0.76, 0.62), radius=0.02)
        return 0.5, 0.28, 0.08
    if v == 1:  # armchair
        for x in (0.2, 0.8):
            c.line(METAL, [(x, 0.8), (x, 0.93)], 0.04)
        c.rect(BODY, (0.24, 0.14, 0.76, 0.62), radius=0.08)
        c.rect(ACCENT, (0.1, 0.42, 0.26, 0.82), radius=0.05)
        c.rect(ACCENT, (0.74, 0.42, 0.9, 0.82), radius=0.05)
        c.rect(BODY, (0.24, 0.6, 0.76, 0.82), radius=0.03)
        return 0.5, 0.36, 0.08
    if v == 2:  # bar stool
        c.line(METAL, [(0.42, 0.36), (0.24, 0.95)], 0.035)
        c.line(METAL, [(0.58, 0.36), (0.76, 0.95)], 0.035)
        c.line(METAL, [(0.5, 0.36), (0.5, 0.95)], 0.035)
        c.line(ACCENT, [(0.3, 0.74), (0.7, 0.74)], 0.03)
        c.ellipse(BODY, (0.18, 0.18, 0.82, 0.42))
        return 0.5, 0.3, 0.07
    # office chair: tall back, pole, star base
    c.line(METAL, [(0.5, 0.6), (0.5, 0.84)], 0.045)
    for x in (0.18, 0.34, 0.66, 0.82):
        c.line(METAL, [(0.5, 0.84), (x, 0.92)], 0.03)
    c.rect(BODY, (0.28, 0.04, 0.72, 0.52), radius=0.1)
    c.rect(DARK, (0.22, 0.52, 0.78, 0.62), radius=0.03)
    c.rect(ACCENT, (0.16, 0.4, 0.22, 0.56))
    c.rect(ACCENT, (0.78, 0.4, 0.84, 0.56))
    return 0.5, 0.26, 0.08


def _lamp(c: _Canvas, v: int) -> tuple[float, float, float]:
    if v == 0:  # table lamp with cone shade
        c.rect(METAL, (0.47, 0.4, 0.53, 0.84))
        c.ellipse(ACCENT, (0.3, 0.8, 0.7, 0.92))
        c.poly(BODY, [(0.36, 0.08), (0.64, 0.08), (0.78, 0.46), (0.22, 0.46)])
        return 0.5, 0.28, 0.08
    if v == 1:  # desk lamp: angled arm, cone head
        c.line(METAL, [(0.5, 0.88), (0.34, 0.5), (0.6, 0.24)], 0.035)
        c.ellipse(ACCENT, (0.28, 0.84, 0.72, 0.94))
        c.poly(BODY, [(0.54, 0.16), (0.66, 0.12), (0.9, 0.42), (0.64, 0.52)])
        return 0.7, 0.32, 0.06
    if v == 2:  # globe lamp
        c.rect(ACCENT, (0.38, 0.66, 0.62, 0.9), radius=0.03)
        c.ellipse(BODY, (0.22, 0.1, 0.78, 0.7))
        return 0.5, 0.4, 0.09
    # floor lamp: drum shade, thin pole, disk base
    c.rect(METAL, (0.485, 0.28, 0.515, 0.9))
    c.ellipse(ACCENT, (0.32, 0.88, 0.68, 0.96))
    c.rect(BODY, (0.3, 0.04, 0.7, 0.3), radius=0.02)
    return 0.5, 0.17, 0.07


def _phone(c: _Canvas, v: int) -> tuple[float, float, float]:
    if v == 3:  # flip phone
        c.rect(BODY, (0.3, 0.08, 0.7, 0.48), radius=0.05)
        c.rect(BODY, (0.3, 0.52, 0.7, 0.92), radius=0.05)
        c.rect(ACCENT, (0.28, 0.47, 0.72, 0.53), radius=0.02)
        c.rect(DARK, (0.38, 0.16, 0.62, 0.34), radius=0.02)
        return 0.5, 0.72, 0.07
    c.rect(BODY, (0.28, 0.06, 0.72, 0.94), radius=0.07)
    if v == 0:  # single lens
        c.ellipse(DARK, (0.34, 0.12, 0.44, 0.22))
        c.ellipse(METAL, (0.46, 0.15, 0.5, 0.19))
    elif v == 1:  # dual lens pill
        c.rect(ACCENT, (0.33, 0.11, 0.45, 0.34), radius=0.05)
        c.ellipse(DARK, (0.35, 0.13, 0.43, 0.21))
        c.ellipse(DARK, (0.35, 0.24, 0.43, 0.32))
    else:  # triple lens square bump
        c.rect(ACCENT, (0.32, 0.1, 0.54, 0.32), radius=0.04)
        for box in ((0.34, 0.12, 0.42, 0.2), (0.34, 0.22, 0.42, 0.3), (0.44, 0.17, 0.52, 0.25)):
            c.ellipse(DARK, box)
    return 0.5, 0.58, 0.08


def _lens(v: int, cx: float, mirror: bool) -> list[Point]:
    """One sunglasses lens outline of variant ``v`` centred at ``cx`` (mirrored on the left)."""
    if v == 0:  # aviator teardrop
        pts = [(-0.18, -0.1), (0.16, -0.12), (0.18, 0.0), (0.06, 0.16), (-0.12, 0.14)]
    elif v == 1:  # wayfarer
        pts = [(-0.2, -0.12), (0.19, -0.12), (0.16, 0.1), (-0.16, 0.12)]
    elif v == 2:  # round
        pts = [(0.17 * np.cos(a), 0.15 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 16)]
    else:  # cat-eye, outer corner swept up
        pts = [(-0.2, -0.16), (0.16, -0.08), (0.16, 0.06), (0.0, 0.12), (-0.18, 0.04)]
    s = -1.0 if mirror else 1.0
    return [(cx + s * x, 0.5 + y) for x, y in pts]


def _sunglasses(c: _Canvas, v: int) -> tuple[float, float, float]:
    frame = 0.035 if v != 0 else 0.02
    c.line(BODY, [(0.06, 0.44), (0.02, 0.5)], 0.03)  # temples
    c.line(BODY, [(0.94, 0.44), (0.98, 0.5)], 0.03)
    c.line(BODY, [(0.42, 0.46), (0.5, 0.43), (0.58, 0.46)], 0.03)  # bridge
    for cx, mirror in ((0.28, True), (0.72, False)):
        outline = _lens(v, cx, mirror)
        c.poly(BODY, outline, smooth=True)
        inner = [(cx + (x - cx) * (1 - 4 * frame), 0.5 + (y - 0.5) * (1 - 5 * frame))
                 for x, y in outline]
        c.poly(DARK, inner, smooth=True)
    c.rect(ACCENT, (0.05, 0.4, 0.1, 0.45))  # hinges
    c.rect(ACCENT, (0.9, 0.4, 0.95, 0.45))
    return 0.77, 0.46, 0.04


# fmt: on


_DRAW: dict[str, Callable[[_Canvas, int], tuple[float, float, float]]] = {
    "shoe": _shoe,
    "handbag": _handbag,
    "t-shirt": _tshirt,
    "dress": _dress,
    "hat": _hat,
    "watch": _watch,
    "bottle": _bottle,
    "mug": _mug,
    "chair": _chair,
    "lamp": _lamp,
    "phone": _phone,
    "sunglasses": _sunglasses,
}


def _downsample(mask: np.ndarray, factor: int) -> np.ndarray:
    """Box-filter a boolean mask down by ``factor`` (PIL's C reduce: fast) to 0..1 coverage."""
    img = Image.fromarray(mask.astype(np.uint8) * 255, "L").reduce(factor)
    return np.asarray(img, dtype=np.float32) / 255.0


@lru_cache(maxsize=16)  # consumers cache what they derive from it (sprites._layout)
def silhouette(category: str, variant: int, size: int) -> Silhouette:
    """The part masks of ``category`` shape ``variant`` at ``size`` pixels (cached per process).

    Raises:
        ValueError: unknown category or variant out of range.
    """
    if category not in _DRAW:
        raise ValueError(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    if not 0 <= variant < VARIANTS:
        raise ValueError(f"variant must be in 0..{VARIANTS - 1}, got {variant}")
    canvas = _Canvas(size * SUPERSAMPLE)
    logo = _DRAW[category](canvas, variant)
    labels = np.asarray(canvas.img)
    seam = np.zeros(labels.shape, dtype=bool)
    seam[1:, :] |= labels[1:, :] != labels[:-1, :]
    seam[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    present = np.bincount(labels.ravel(), minlength=len(ROLES) + 1)
    masks = {role: _downsample(labels == role, SUPERSAMPLE) for role in ROLES if present[role]}
    edges = np.clip(_downsample(seam, SUPERSAMPLE) * SUPERSAMPLE, 0, 1)
    alpha = np.clip(sum(masks.values()), 0.0, 1.0).astype(np.float32)
    return Silhouette(masks=masks, edges=edges, logo=logo, alpha=alpha)


# Logo glyphs in a unit box: ("poly", points) fills, ("disc", box) fills, ("hole", box) clears.
# fmt: off
_GLYPH_PARTS: dict[str, tuple[tuple[str, tuple], ...]] = {
    "ring": (("disc", (0.06, 0.06, 0.94, 0.94)), ("hole", (0.3, 0.3, 0.7, 0.7))),
    "cross": (("poly", ((0.36, 0.04), (0.64, 0.04), (0.64, 0.36), (0.96, 0.36), (0.96, 0.64),
                        (0.64, 0.64), (0.64, 0.96), (0.36, 0.96), (0.36, 0.64), (0.04, 0.64),
                        (0.04, 0.36), (0.36, 0.36))),),
    "diamond": (("poly", ((0.5, 0.02), (0.9, 0.5), (0.5, 0.98), (0.1, 0.5))),),
    "triangle": (("poly", ((0.5, 0.06), (0.96, 0.9), (0.04, 0.9))),),
    "bolt": (("poly", ((0.6, 0.0), (0.18, 0.56), (0.46, 0.56), (0.36, 1.0), (0.84, 0.4),
                       (0.54, 0.4))),),
    "heart": (("disc", (0.04, 0.1, 0.54, 0.6)), ("disc", (0.46, 0.1, 0.96, 0.6)),
              ("poly", ((0.07, 0.45), (0.93, 0.45), (0.5, 0.94)))),
    "crescent": (("disc", (0.04, 0.04, 0.96, 0.96)), ("hole", (0.3, -0.02, 1.1, 0.78))),
    "square": (("poly", ((0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9))),
               ("hole", (0.34, 0.34, 0.66, 0.66))),
    "chevron": (("poly", ((0.04, 0.3), (0.5, 0.7), (0.96, 0.3), (0.96, 0.6), (0.5, 1.0),
                          (0.04, 0.6))),),
    "trio": (("disc", (0.3, 0.02, 0.7, 0.42)), ("disc", (0.02, 0.56, 0.42, 0.96)),
             ("disc", (0.58, 0.56, 0.98, 0.96))),
    "arrow": (("poly", ((0.5, 0.02), (0.95, 0.5), (0.66, 0.5), (0.66, 0.98), (0.34, 0.98),
                        (0.34, 0.5), (0.05, 0.5))),),
}
# fmt: on
STAR_POINTS, STAR_INNER = 5, 0.42  # five-pointed star, inner radius relative to the outer


def _star() -> tuple[tuple[str, tuple], ...]:
    ang = np.linspace(-np.pi / 2, 1.5 * np.pi, 2 * STAR_POINTS + 1)[:-1]
    rad = np.where(np.arange(2 * STAR_POINTS) % 2 == 0, 0.5, 0.5 * STAR_INNER)
    pts = tuple((0.5 + r * np.cos(a), 0.52 + r * np.sin(a)) for a, r in zip(ang, rad, strict=True))
    return (("poly", pts),)


@lru_cache(maxsize=512)
def glyph_mask(name: str, px: int) -> np.ndarray:
    """Anti-aliased coverage (float32 [px, px]) of a logo glyph (cached per process).

    Raises:
        ValueError: unknown glyph name.
    """
    if name not in GLYPHS:
        raise ValueError(f"unknown glyph {name!r}; known: {', '.join(GLYPHS)}")
    parts = _star() if name == "star" else _GLYPH_PARTS[name]
    big = max(1, px) * SUPERSAMPLE * 2
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    for kind, geom in parts:
        if kind == "poly":
            draw.polygon([(x * big, y * big) for x, y in geom], fill=1)
        else:
            draw.ellipse([v * big for v in geom], fill=0 if kind == "hole" else 1)
    return _downsample(np.asarray(img) > 0, SUPERSAMPLE * 2)
