"""A refused upload's HTTP status comes from the error's type, not from its wording."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from vsearch.errors import BadInput, TooLarge
from vsearch.search.images import decode_bytes
from vsearch.serving.http import status_of


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.unit
def test_status_follows_the_type() -> None:
    assert status_of(TooLarge("anything")) == 413
    assert status_of(BadInput("image too large, says the text")) == 400


@pytest.mark.unit
@pytest.mark.parametrize(
    ("data", "max_bytes", "max_pixels", "kind", "status"),
    [
        (b"x" * 2000, 1000, 10**6, TooLarge, 413),
        (_png(300, 300), 10**6, 10_000, TooLarge, 413),
        (b"not an image", 10**6, 10**6, BadInput, 400),
        (b"", 10**6, 10**6, BadInput, 400),
    ],
)
def test_decode_raises_typed_refusals(data, max_bytes, max_pixels, kind, status) -> None:
    with pytest.raises(kind) as caught:
        decode_bytes(data, 32, max_bytes, max_pixels)
    assert status_of(caught.value) == status
