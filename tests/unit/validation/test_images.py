"""Image checks: sizes are refused from the header before decoding; broken files are named."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from vsearch.settings import ValidationSettings
from vsearch.validation.images import check_image, check_images

pytestmark = pytest.mark.unit

SETTINGS = ValidationSettings(image_max_bytes=50_000, image_max_pixels=64 * 64, image_min_side=8)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


def _with_header_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG with its IHDR claiming another size (CRC fixed): a decompression bomb."""
    ihdr = png[12:29]  # b"IHDR" + 13 bytes of data
    patched = ihdr[:4] + struct.pack(">II", width, height) + ihdr[12:]
    crc = struct.pack(">I", zlib.crc32(patched) & 0xFFFFFFFF)
    return png[:12] + patched + crc + png[33:]


def test_good_image_passes(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(_png(32, 20))
    check = check_image(tmp_path, "a.png", SETTINGS)
    assert (check.file_error, check.size_error) == (None, None)
    assert (check.width, check.height) == (32, 20)


def test_decompression_bomb_is_refused_from_the_header_without_decoding(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(_with_header_size(_png(16, 16), 30_000, 30_000))
    check = check_image(tmp_path, "bomb.png", SETTINGS)
    assert check.file_error is None  # the file is never decoded, so never found "corrupt"
    assert check.size_error and "pixels" in check.size_error


@pytest.mark.parametrize(
    ("name", "data", "kind", "needle"),
    [
        ("small.png", _png(4, 40), "size", "image_min_side"),
        ("wide.png", _png(80, 80), "size", "image_max_pixels"),
        ("text.png", b"not an image at all", "file", "not an image"),
        ("cut.png", _png(40, 40)[:60], "file", "not decodable"),
    ],
)
def test_bad_images_are_named(
    tmp_path: Path, name: str, data: bytes, kind: str, needle: str
) -> None:
    (tmp_path / name).write_bytes(data)
    check = check_image(tmp_path, name, SETTINGS)
    error = check.size_error if kind == "size" else check.file_error
    assert error and needle in error


def test_paths_outside_the_drop_are_refused(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (tmp_path / "secret.png").write_bytes(_png(32, 32))
    (drop / "link.png").symlink_to(tmp_path / "secret.png")
    for rel, why in (
        ("../secret.png", "'..'"),
        (str(tmp_path / "secret.png"), "absolute path"),
        ("link.png", "outside the drop folder"),
    ):
        check = check_image(drop, rel, SETTINGS)
        assert check.path_error is not None and why in check.path_error
        assert check.file_error is None and check.width is None  # never opened


def test_check_images_checks_each_distinct_path_once(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(_png(32, 32))
    checks = check_images(tmp_path, ["a.png", "a.png", "gone.png", None], SETTINGS)
    assert set(checks) == {"a.png", "gone.png"}
    assert checks["gone.png"].file_error == "file missing"
