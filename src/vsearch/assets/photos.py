"""Real photographs to paste products on, from images that installed packages ship.

Why real photos: a model trained on flat or synthetic backgrounds learns to find "the only
object in the picture" and fails on the street. Texture (gravel, brick, grass, star fields),
clutter (a cat, a motorbike, a coffee cup) and real lighting are what make localisation hard.

Only images bundled inside the wheels of scikit-image, scikit-learn and matplotlib are used;
nothing is downloaded (images that scikit-image fetches with pooch are not in the list). Each
query takes a random crop, flip and scale of one photo, so a dozen photos give endless
backgrounds.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

# Photos bundled in scikit-image's wheel (the files behind skimage.data.coffee(), .astronaut(),
# ..., .stereo_motorcycle()[0]; none of them is a pooch download) and the two photos of
# sklearn.datasets.load_sample_images(). They are read straight from the installed packages:
# importing skimage.io (scipy) or sklearn costs seconds in every worker, reading files does not.
SKIMAGE_PHOTOS: tuple[str, ...] = (
    "coffee.png",
    "astronaut.png",
    "chelsea.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "gravel.png",
    "brick.png",
    "grass.png",
    "camera.png",
    "coins.png",
    "moon.png",
    "motorcycle_left.png",
)
SKLEARN_PHOTOS: tuple[str, ...] = ("china.jpg", "flower.jpg")
# Further real photos and pictures the installed wheels ship, for training backgrounds only
# (appended after the others so the query photos keep their order and tints). Left out:
# motorcycle_right.png (the other half of a query photo's stereo pair) and pictures under
# 256 px a side.
EXTRA_SKIMAGE_PHOTOS: tuple[str, ...] = (
    "cell.png",
    "color.png",
    "horse.png",
    "ihc.png",
    "retina.jpg",
    "clock_motion.png",
    "logo.png",
    "phantom.png",
)
MATPLOTLIB_PHOTOS: tuple[str, ...] = ("grace_hopper.jpg",)
# Disjoint halves (each with textures and clutter): shoppers' photos in the demo world are
# taken on QUERY_PHOTOS; training pastes products on TRAINING_PHOTOS only. Why: with one shared
# bank the detector would be evaluated on the very backgrounds it learned, which flatters it;
# a real shop's customers photograph on backgrounds no training set has seen.
QUERY_PHOTOS: frozenset[str] = frozenset(
    {
        "astronaut.png",
        "rocket.jpg",
        "brick.png",
        "coins.png",
        "moon.png",
        "motorcycle_left.png",
        "flower.jpg",
    }
)
TRAINING_PHOTOS: frozenset[str] = frozenset(
    {
        "coffee.png",
        "chelsea.png",
        "hubble_deep_field.jpg",
        "gravel.png",
        "grass.png",
        "camera.png",
        "china.jpg",
        *EXTRA_SKIMAGE_PHOTOS,
        *MATPLOTLIB_PHOTOS,
    }
)
BANKS = {"queries": QUERY_PHOTOS, "training": TRAINING_PHOTOS}
MAX_SIDE = 640  # photos are downscaled once to this, so crops stay cheap
GREY_TINTS: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.95, 0.86),  # warm
    (0.9, 0.96, 1.0),  # cool
    (1.0, 1.0, 1.0),
)
MIN_CROP = 0.3  # smallest crop side as a fraction of the photo's shorter side
FLIP_PROB = 0.5  # mirrored crops: twice the variety from the same photos


def _rgb(img: Image.Image, tint_index: int) -> Image.Image:
    """Grey photos become RGB with a gentle tint, so they are not obviously grey-scale."""
    if img.mode in ("L", "I", "I;16", "1"):
        grey = np.asarray(img.convert("L"), dtype=np.float32)[..., None]
        tint = np.array(GREY_TINTS[tint_index % len(GREY_TINTS)], dtype=np.float32)
        return Image.fromarray(np.clip(grey * tint, 0, 255).astype(np.uint8), "RGB")
    return img.convert("RGB")


def _shrink(img: Image.Image) -> Image.Image:
    scale = MAX_SIDE / max(img.size)
    if scale >= 1:
        return img
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)


def bundled_photo(package: str, *parts: str) -> Path:
    """The path of a data file inside an installed package, without importing the package.

    Raises:
        FileNotFoundError: the package is not installed or does not ship the file.
    """
    spec = importlib.util.find_spec(package)
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        path = Path(root).joinpath(*parts)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{'/'.join(parts)} not found in the installed {package!r} package; the demo world's "
        "backgrounds come only from photos bundled with scikit-image, scikit-learn and "
        "matplotlib (reinstall them from requirements.lock)"
    )


def photo_paths() -> list[Path]:
    """Every background photo file, in a fixed order."""
    return (
        [bundled_photo("skimage", "data", name) for name in SKIMAGE_PHOTOS]
        + [bundled_photo("sklearn", "datasets", "images", name) for name in SKLEARN_PHOTOS]
        + [bundled_photo("skimage", "data", name) for name in EXTRA_SKIMAGE_PHOTOS]
        + [
            bundled_photo("matplotlib", "mpl-data", "sample_data", name)
            for name in MATPLOTLIB_PHOTOS
        ]
    )


@lru_cache(maxsize=len(BANKS))
def photo_bank(which: str = "queries") -> tuple[Image.Image, ...]:
    """One half of the photos (:data:`BANKS`) as RGB PIL images, loaded once per process."""
    if which not in BANKS:
        raise ValueError(f"photo bank {which!r}: expected one of {sorted(BANKS)}")
    bank = []
    for i, path in enumerate(photo_paths()):
        if path.name not in BANKS[which]:
            continue
        with Image.open(path) as im:
            im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEGs decode at reduced size: faster
            bank.append(_shrink(_rgb(im, i)))
    return tuple(bank)


def random_background(rng: np.random.Generator, size: int) -> Image.Image:
    """A random crop of a random query-bank photo, maybe mirrored, resized to ``size`` square."""
    bank = photo_bank("queries")
    photo = bank[int(rng.integers(len(bank)))]
    w, h = photo.size
    side = rng.uniform(MIN_CROP, 1.0) * min(w, h)
    x0 = rng.uniform(0, w - side)
    y0 = rng.uniform(0, h - side)
    img = photo.resize((size, size), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    if rng.random() < FLIP_PROB:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img
