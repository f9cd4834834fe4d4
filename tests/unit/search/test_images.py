"""Phone photos: the EXIF orientation is applied on every decode, so a box drawn on the photo
as a browser displays it covers the same pixels in what the model sees.

Each test photo is built *as displayed* (four quadrants of four colours, green top-left: every
turn or mirror moves at least two of them), then stored turned or mirrored the way a camera
stores it, with the EXIF ``Orientation`` tag that tells viewers how to turn it back; what PIL can
write, a phone writes too.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests import kit
from vsearch.search.images import (
    EXIF_ORIENTATION,
    decode_bytes,
    decode_file,
    decode_images,
    displayed_size,
    to_model_pixels,
)

pytestmark = pytest.mark.unit

SIZE = 64
W, H = 160, 96  # displayed: landscape
QUADRANTS = {  # displayed coordinates (x0, y0, x1, y1) -> colour
    (0, 0, W // 2, H // 2): (0, 200, 0),
    (W // 2, 0, W, H // 2): (0, 0, 220),
    (0, H // 2, W // 2, H): (230, 230, 0),
    (W // 2, H // 2, W, H): (220, 0, 0),
}
GREEN_BOX = (16, 8, 56, 40)  # inside the green quadrant, displayed pixels (x0, y0, x1, y1)
BOX = [GREEN_BOX[0] / W, GREEN_BOX[1] / H, GREEN_BOX[2] / W, GREEN_BOX[3] / H]
# How to store a displayed photo so that a viewer applying the tag shows it upright again.
STORE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # the camera held upright: stored turned left, shown turned right
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
LIMITS = {"max_bytes": 5_000_000, "max_pixels": 10_000_000}


def displayed() -> Image.Image:
    img = Image.new("RGB", (W, H))
    for box, colour in QUADRANTS.items():
        img.paste(colour, box)
    return img


def phone_jpeg(orientation: int) -> bytes:
    """The displayed photo stored as a camera would, tagged with ``orientation``."""
    stored = displayed().transpose(STORE[orientation])
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def _upright_pixels() -> np.ndarray:
    return to_model_pixels(displayed(), SIZE).astype(np.int16)


@pytest.mark.parametrize("orientation", sorted(STORE))
def test_decode_applies_the_exif_orientation(orientation: int, tmp_path: Path) -> None:
    data = phone_jpeg(orientation)
    with Image.open(io.BytesIO(data)) as img:
        assert img.size != (W, H) or orientation in (2, 3, 4)  # stored turned or mirrored
        assert displayed_size(img) == (W, H)
    up = decode_bytes(data, SIZE, **LIMITS)
    # What the model sees is the displayed photo (up to JPEG loss) ...
    assert np.abs(up.astype(np.int16) - _upright_pixels()).mean() < 6
    # ... and not the stored pixels (the test would catch a decode that ignores the tag).
    stored = Image.open(io.BytesIO(data)).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    as_stored = np.asarray(stored, dtype=np.int16).transpose(2, 0, 1)
    assert np.abs(as_stored - _upright_pixels()).mean() > 40
    # Drops (training, evaluation, index build) decode their files the same way.
    path = tmp_path / "phone.jpg"
    path.write_bytes(data)
    assert np.array_equal(decode_file(path, SIZE), up)
    assert np.array_equal(decode_images([path], SIZE, 1)[0].numpy(), up)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_box_drawn_on_the_displayed_photo_crops_the_right_region(orientation: int) -> None:
    up = decode_bytes(phone_jpeg(orientation), SIZE, **LIMITS)
    # On the model's pixels: the box's inside is the green patch.
    x0, y0, x1, y1 = (round(v * SIZE) for v in BOX)
    inside = up[:, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1].reshape(3, -1).mean(axis=1)
    assert inside[1] > 170 and inside[0] < 60 and inside[2] < 60
    # The crop the network describes (no margin) is the green patch too.
    net = kit.tiny_net(("a", "b")).eval()
    images = torch.from_numpy(up[None]).float() / 255.0
    crop = net.crop(images, torch.tensor([BOX], dtype=torch.float32), margin=0.0)
    colour = crop[0].reshape(3, -1).mean(dim=1) * 255
    assert colour[1] > 150 and colour[0] < 70 and colour[2] < 70


def test_photos_without_orientation_are_decoded_as_stored() -> None:
    buf = io.BytesIO()
    displayed().save(buf, "JPEG", quality=95)
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        assert displayed_size(img) == (W, H)
    up = decode_bytes(buf.getvalue(), SIZE, **LIMITS)
    assert np.abs(up.astype(np.int16) - _upright_pixels()).mean() < 6
