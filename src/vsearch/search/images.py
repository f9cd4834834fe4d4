"""Photos → model pixels: the one decode used by training, evaluation and the service.

Why one function: a network sees what its input pipeline made of a photo (resampling filter,
JPEG draft scale, colour conversion). If the service decoded uploads differently from the way
training and the catalog index decoded their files, the query embedding would drift from the
catalog's for no reason the metrics could show. :func:`to_model_pixels` is that shared step;
:func:`decode_file` and :func:`decode_images` (drops) and :func:`decode_bytes` (uploads) only
differ in where the bytes come from and in how strictly they are checked.

Phone photos: a camera stores the pixels as the sensor read them and says in the EXIF
``Orientation`` tag how to turn them for display; browsers, phones and photo viewers all apply
it. :func:`upright` applies it here, on every decode (drops, training, evaluation, the index
build and uploads), so the model sees the photo the way a person (and the web page, where a box
is drawn) sees it, and a box in normalised displayed coordinates covers the same pixels.

Uploads are untrusted: :func:`decode_bytes` checks the byte size before parsing, the pixel
count from the header *before* decoding (a decompression bomb is refused without being
expanded), only accepts the usual photo formats, and decodes fully so that a truncated file is
an error, not a grey half-image. Every refusal is a :class:`~vsearch.errors.BadInput` whose
message names the problem.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from vsearch.errors import BadInput, TooLarge

if TYPE_CHECKING:
    import torch

RESAMPLE = Image.BILINEAR
REDUCING_GAP = 2.0  # PIL's two-step reduce: fast and close to a full-quality resample
EXIF_ORIENTATION = 0x0112  # the EXIF tag; 1 = upright, 2..8 = mirrored and/or turned
SIDEWAYS = frozenset({5, 6, 7, 8})  # orientations that swap width and height


def orientation(img: Image.Image) -> int:
    """The EXIF orientation of an opened image (1 when absent or unreadable)."""
    try:
        value = img.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, TypeError):  # a corrupt EXIF block: as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(img: Image.Image) -> Image.Image:
    """The image as displayed: its EXIF orientation applied (the image itself if upright).

    Why not always ``ImageOps.exif_transpose``: it copies the image even when there is
    nothing to turn, which every demo and studio photo would pay for.
    """
    if orientation(img) == 1:
        return img
    return ImageOps.exif_transpose(img)


def displayed_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened image as displayed (EXIF orientation applied), from
    its header only: what normalised boxes drawn on the photo refer to."""
    width, height = img.size
    return (height, width) if orientation(img) in SIDEWAYS else (width, height)


def to_model_pixels(img: Image.Image, size: int) -> np.ndarray:
    """An opened PIL image → ``uint8[3, size, size]`` RGB (upright, resized, aspect not kept).

    Why the aspect is not kept: boxes are normalised xyxy, so a plain resize maps a box drawn
    on the displayed photo to the same numbers on the model's input. Why upright: see the
    module docstring (EXIF orientation).
    """
    img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when possible
    rgb = upright(img).convert("RGB").resize((size, size), RESAMPLE, reducing_gap=REDUCING_GAP)
    return np.array(rgb, dtype=np.uint8).transpose(2, 0, 1)


def decode_file(path: Path, size: int) -> np.ndarray:
    """Decode an image file of a (validated) drop into ``uint8[3, size, size]``.

    Raises:
        OSError, ValueError: what PIL raises for a missing or undecodable file (callers add
            the context: which drop, what to do).
    """
    with Image.open(path) as img:
        return to_model_pixels(img, size)


def decode_images(paths: list[Path], size: int, workers: int) -> torch.Tensor:
    """Decode a drop's image files into ``uint8[N, 3, size, size]`` (RGB, resized, aspect not kept).

    Training, evaluation and the catalog index decode their files with it, the service its
    uploads with :func:`decode_bytes`: both go through :func:`to_model_pixels`.
    Why threads: PIL releases the GIL while decoding and resizing.

    Raises:
        BadInput: a file is missing or cannot be decoded (validate the drop first).
    """
    import torch  # here, not at import: the module also serves torch-free callers

    def one(path: Path) -> np.ndarray:
        try:
            return decode_file(path, size)
        except (OSError, ValueError) as exc:
            raise BadInput(
                f"{path}: cannot decode image ({exc}); validate the drop first"
            ) from None

    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, arr in enumerate(pool.map(one, paths)):
            out[i] = torch.from_numpy(arr)
    return out


def decode_bytes(
    data: bytes,
    size: int,
    max_bytes: int,
    max_pixels: int,
    formats: Sequence[str] | None = None,
) -> np.ndarray:
    """Check and decode an uploaded photo into ``uint8[3, size, size]``.

    Args:
        data: the file's bytes.
        size: the model's input side.
        max_bytes: larger uploads are refused before parsing.
        max_pixels: images whose header declares more pixels are refused before decoding.
        formats: PIL format names accepted (``None``: any PIL can open).

    Raises:
        TooLarge: (a ``BadInput``) too many bytes or pixels.
        BadInput: empty, not an image (or a refused format), truncated or corrupt.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BadInput(f"image must be bytes, got {type(data).__name__}")
    n = len(data)
    if n == 0:
        raise BadInput("image is empty (0 bytes)")
    if n > max_bytes:
        raise TooLarge(f"image too large: {n} bytes > max_image_bytes {max_bytes}")
    if formats:
        Image.init()
        unknown = sorted({f.upper() for f in formats} - set(Image.OPEN))
        if unknown:
            raise ValueError(f"search.image_formats: PIL cannot open formats {unknown}")
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # set globally by other code: we would miss truncation
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; refusing to decode")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit is checked next; PIL's warning would only duplicate it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=list(formats) if formats else None)
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"image has too many pixels (decompression bomb): {exc}") from None
    except UnidentifiedImageError:
        accepted = f" (accepted formats: {', '.join(formats)})" if formats else ""
        raise BadInput(f"not an image: cannot identify the image format{accepted}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInput(f"image is truncated or corrupt: {exc}") from None
    with img:
        width, height = img.size
        if width < 1 or height < 1:
            raise BadInput(f"image has no pixels: {width}x{height}")
        if width * height > max_pixels:
            raise TooLarge(
                f"image has too many pixels: {width}x{height} = {width * height} > "
                f"max_image_pixels {max_pixels} (decompression bomb guard)"
            )
        try:
            return to_model_pixels(img, size)
        except (OSError, SyntaxError, ValueError) as exc:
            raise BadInput(f"image is truncated or corrupt: {exc}") from None


def check_box(box: Sequence[float] | None) -> np.ndarray | None:
    """A user-drawn box as ``float32[4]`` normalised xyxy (``None`` passes through).

    Raises:
        BadInput: not four finite numbers in [0, 1] with ``x0 < x1`` and ``y0 < y1``.
    """
    if box is None:
        return None
    try:
        arr = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInput(f"box must be 4 numbers x0,y0,x1,y1 in [0, 1], got {box!r}") from None
    if arr.shape != (4,):
        raise BadInput(f"box must be 4 numbers x0,y0,x1,y1 in [0, 1], got shape {arr.shape}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise BadInput(f"box outside [0, 1]: {arr.tolist()} (normalised x0,y0,x1,y1 expected)")
    if arr[0] >= arr[2] or arr[1] >= arr[3]:
        raise BadInput(f"box is empty: need x0 < x1 and y0 < y1, got {arr.tolist()}")
    return arr.astype(np.float32)
