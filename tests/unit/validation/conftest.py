"""Fixtures: a small, hand-built, *valid* drop (30 items, 20 queries, 200 impressions, real
tiny images), private copies of it, settings scaled to it, and the reference time ``now``.

Why by hand and not with ``vsearch world``: every corruption test must know exactly which row it
breaks and what the one expected failure is, and the validation tests must not depend on the
generator's choices. The click pattern is fixed: queries with ``q % 3 == 0`` get two clicks
(orders 0, 1), ``q % 3 == 1`` one click, the rest none (CTR 0.105).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image, ImageDraw

from vsearch.contracts import CATALOG, IMPRESSIONS, QUERIES, write_table
from vsearch.settings import ValidationSettings

N_ITEMS, N_QUERIES, LIST_LENGTH = 30, 20, 10
IMAGE_SIDE = 48
START = datetime(2026, 10, 1, tzinfo=UTC)
NOW = START + timedelta(days=30)
DROP_ID = "unit-drop"


def _image(seed: int, fmt: str) -> bytes:
    """A tiny but real picture: a coloured box on a plain background."""
    im = Image.new("RGB", (IMAGE_SIDE, IMAGE_SIDE), (seed * 37 % 256, 90, 160))
    draw = ImageDraw.Draw(im)
    draw.rectangle((8, 8, 8 + seed % 30, 40), fill=(250, seed * 11 % 256, 20))
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def drop_frames() -> dict[str, pd.DataFrame]:
    """The three tables of the valid drop."""
    items = [f"i{i:03d}" for i in range(N_ITEMS)]
    catalog = pd.DataFrame(
        {
            "item_id": items,
            "category": [f"c{i % 3}" for i in range(N_ITEMS)],
            "seller_id": [f"s{i % 7}" for i in range(N_ITEMS)],
            "title": [f"Item {i}" for i in range(N_ITEMS)],
            "price": [10.0 + i for i in range(N_ITEMS)],
            "image": [f"images/catalog/{x}.png" for x in items],
            "listed_at": [START + timedelta(hours=i) for i in range(N_ITEMS)],
            "quality": [0.5] * N_ITEMS,
            "sales": list(range(N_ITEMS)),
        }
    )
    qids = [f"q{q:03d}" for q in range(N_QUERIES)]
    q_ts = [START + timedelta(days=2, hours=q) for q in range(N_QUERIES)]
    queries = pd.DataFrame(
        {
            "query_id": qids,
            "image": [f"images/queries/{q}.jpg" for q in qids],
            "user_id": [f"u{q % 5}" for q in range(N_QUERIES)],
            "session_id": [f"sess{q}" for q in range(N_QUERIES)],
            "ts": q_ts,
            "predicted_category": [f"c{q % 3}" for q in range(N_QUERIES)],
            "selected_category": [None if q % 2 else f"c{q % 3}" for q in range(N_QUERIES)],
        }
    )
    clicks = {0: {1: 0, 4: 1}, 1: {0: 0}, 2: {}}
    rows = []
    for q in range(N_QUERIES):
        for p in range(LIST_LENGTH):
            order = clicks[q % 3].get(p)
            rows.append(
                {
                    "event_id": f"e{q:03d}-{p}",
                    "query_id": qids[q],
                    "session_id": f"sess{q}",
                    "item_id": items[(q * 7 + p) % N_ITEMS],
                    "position": p,
                    "clicked": order is not None,
                    "click_order": order,
                    "dwell_ms": 5000 if order is not None else None,
                    "ts": q_ts[q] + timedelta(seconds=p + 1),
                }
            )
    return {"catalog": catalog, "queries": queries, "impressions": pd.DataFrame(rows)}


def write_drop(folder: Path, frames: dict[str, pd.DataFrame]) -> Path:
    """Write tables (Parquet, contract format), images and drop.json into ``folder``."""
    for contract in (CATALOG, QUERIES, IMPRESSIONS):
        write_table(frames[contract.name], contract, folder)
    for i, rel in enumerate(frames["catalog"]["image"]):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(_image(i, "PNG"))
    for i, rel in enumerate(frames["queries"]["image"]):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(_image(i + 100, "JPEG"))
    (folder / "drop.json").write_text(json.dumps({"drop_id": DROP_ID, "source": "unit test"}))
    return folder


@pytest.fixture(scope="session")
def valid_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The valid drop, written once per session: treat as read-only (copy before corrupting)."""
    return write_drop(tmp_path_factory.mktemp("valid") / "drop", drop_frames())


@pytest.fixture
def fresh_drop(valid_drop: Path, tmp_path: Path, copy_drop: Callable[[Path, Path], Path]) -> Path:
    """A private copy of the valid drop that a test may corrupt (replace images, never edit)."""
    return copy_drop(valid_drop, tmp_path / "drop")


@pytest.fixture(scope="session")
def vsettings() -> ValidationSettings:
    """Validation settings with image limits scaled to the tiny test images."""
    return ValidationSettings(
        image_max_bytes=20_000,
        image_max_pixels=100 * 100,
        image_min_side=16,
        image_workers=2,
    )


@pytest.fixture(scope="session")
def now() -> datetime:
    """The validation time: 30 days after the drop starts (its events are all before it)."""
    return NOW
