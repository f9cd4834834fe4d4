"""Image file checks for a drop: a safe path, present, decodable, and of a usable size.

Why two kinds of error: a *missing or undecodable* file means the drop was copied incompletely or
corrupted in transit, so the whole drop is suspect and must be re-sent (critical); an image that
is *too large or too small* is a perfectly valid file that this system will not use, so only its
row is quarantined. Sizes are checked from the file size and the image header **before**
decoding, so a decompression bomb is refused without ever being expanded in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, UnidentifiedImageError

from vsearch.contracts import unsafe_image_path
from vsearch.settings import ValidationSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageCheck:
    """What was found for one referenced image path.

    Attributes:
        path: the path as written in the table (relative to the drop).
        path_error: why the path itself is refused (absolute, ``..``, a symlink out of the
            drop): critical, and the file is never opened.
        file_error: why the file is unusable as a file (critical), or ``None``.
        size_error: why the image is outside the accepted size (quarantine), or ``None``.
        width: pixels, when the header could be read.
        height: pixels, when the header could be read.
        n_bytes: file size, when the file exists.
    """

    path: str
    file_error: str | None = None
    size_error: str | None = None
    width: int | None = None
    height: int | None = None
    n_bytes: int | None = None
    path_error: str | None = None


def check_image(root: Path, rel: str, settings: ValidationSettings) -> ImageCheck:
    """Check one image file referenced as ``rel`` from the drop folder ``root`` (resolved).

    Order matters: the path (:func:`vsearch.contracts.unsafe_image_path`: nothing outside the
    drop is ever opened),
    existence, then byte size (no read), then the header (size in pixels, no decode), and only
    then a full decode, which is what detects a truncated file.
    """
    refused = unsafe_image_path(root, rel)
    if refused is not None:
        return ImageCheck(rel, path_error=refused)
    full = (root / rel).resolve()
    if not full.is_file():
        return ImageCheck(rel, file_error="file missing")
    n_bytes = full.stat().st_size
    if n_bytes > settings.image_max_bytes:
        return ImageCheck(
            rel,
            size_error=f"{n_bytes} bytes > image_max_bytes {settings.image_max_bytes}",
            n_bytes=n_bytes,
        )
    try:
        with Image.open(full) as im:
            width, height = im.size
            if width * height > settings.image_max_pixels:
                return ImageCheck(
                    rel,
                    size_error=(
                        f"{width}x{height} pixels > image_max_pixels {settings.image_max_pixels}"
                    ),
                    width=width,
                    height=height,
                    n_bytes=n_bytes,
                )
            im.load()
    except Image.DecompressionBombError as exc:
        return ImageCheck(rel, size_error=f"decompression bomb: {exc}", n_bytes=n_bytes)
    except UnidentifiedImageError:
        return ImageCheck(rel, file_error="not an image PIL can identify", n_bytes=n_bytes)
    except (OSError, SyntaxError, ValueError) as exc:  # what PIL raises for corrupt data
        return ImageCheck(rel, file_error=f"not decodable: {exc}", n_bytes=n_bytes)
    size_error = None
    if min(width, height) < settings.image_min_side:
        size_error = f"{width}x{height} smaller than image_min_side {settings.image_min_side}"
    return ImageCheck(rel, size_error=size_error, width=width, height=height, n_bytes=n_bytes)


def check_images(
    drop: Path, paths: Iterable[str], settings: ValidationSettings
) -> dict[str, ImageCheck]:
    """Check every distinct image path once, in a thread pool (PIL decodes without the GIL).

    Returns:
        ``{path: ImageCheck}`` for each distinct non-empty path.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        log.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set by some other code: "
            "truncated image files will not be detected"
        )
    root = Path(drop).resolve()
    unique = sorted({p for p in paths if isinstance(p, str) and p})
    with ThreadPoolExecutor(max_workers=settings.image_workers) as pool:
        results = pool.map(lambda rel: check_image(root, rel, settings), unique)
        return {r.path: r for r in results}
