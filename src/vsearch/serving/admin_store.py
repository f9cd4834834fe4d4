"""Durable metadata and photos of listings added through the admin API.

Why a store of its own: the index release's change log (``Engine.upsert``) keeps an item's code
and vector durably, but not what the result page shows (title, seller, price, photo), and the
drop under ``data/raw`` is a DVC-versioned snapshot the service must never write into. So each
admin upsert first writes the photo and appends one JSON line here (both fsync'd), and only
then upserts the vectors: after a crash an item is either fully searchable or merely has
metadata nobody can reach. Every (re)load folds these rows over the drop's catalog.

Layout::

    ADMIN_DIR/
      catalog.jsonl      one listing per line (contracts.CATALOG columns); the last line of an
                         item_id wins
      images/<file>      uploaded photos, named from the item id (safe characters only)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from vsearch.errors import BadInput
from vsearch.fsio import atomic_write_bytes, fsync_dir

CATALOG_FILE = "catalog.jsonl"
IMAGES_DIR = "images"
IMAGE_PREFIX = "admin/"  # catalog ``image`` values of admin photos (served at /uploads/)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_HASH_CHARS = 10  # disambiguates item ids that sanitise to the same file name
EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}


def photo_name(item_id: str, fmt: str) -> str:
    """A file name for an item's photo: readable, collision-free, no path characters."""
    stem = _SAFE.sub("_", item_id).strip("._")[:64] or "item"
    digest = hashlib.sha256(item_id.encode()).hexdigest()[:_NAME_HASH_CHARS]
    return f"{stem}-{digest}{EXTENSIONS.get(fmt.upper(), '.img')}"


class AdminStore:
    """Append-only metadata log plus photo folder (thread-safe within one process)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.images = folder / IMAGES_DIR
        self._lock = threading.Lock()

    def add(self, row: dict[str, Any], photo: bytes, fmt: str) -> dict[str, Any]:
        """Store the photo and append the row (``image`` is set here); durable on return."""
        with self._lock:
            self.images.mkdir(parents=True, exist_ok=True)
            name = photo_name(str(row["item_id"]), fmt)
            atomic_write_bytes(self.images / name, photo)
            stored = {
                **row,
                "image": IMAGE_PREFIX + name,
                "listed_at": row.get("listed_at") or datetime.now(UTC).isoformat(),
            }
            line = (json.dumps(stored, default=str) + "\n").encode()
            with open(self.folder / CATALOG_FILE, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            fsync_dir(self.folder)
            return stored

    def rows(self) -> pd.DataFrame:
        """Every stored listing, the last line of each item id winning (may be empty).

        A torn last line (a crash mid-append, before the write was acknowledged) is skipped.
        """
        path = self.folder / CATALOG_FILE
        if not path.is_file():
            return pd.DataFrame()
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        if not records:
            return pd.DataFrame()
        return pd.DataFrame.from_records(records).drop_duplicates("item_id", keep="last")

    def photo(self, name: str) -> Path:
        """The file of an uploaded photo, refusing anything but a plain file name in ``images``.

        Raises:
            BadInput: the name has path characters or no such photo exists.
        """
        if not name or _SAFE.search(name) or name.startswith("."):
            raise BadInput(f"bad photo name {name!r}")
        path = self.images / name
        if not path.is_file():
            raise BadInput(f"no uploaded photo {name!r}")
        return path
