"""The service's side of the project's change set: admin upserts and deletes, and their photos.

Why a store of its own: the index release's change log (``Engine.upsert``) keeps an item's code
and vector durably, but not what the result page shows (title, seller, price, photo), and the
vectors only mean something to the model that served the upload. So each admin write is first
recorded in the project's change set (:class:`vsearch.index.changeset.ChangeSet`: SQLite in WAL
mode, the row and its photo in one committed transaction), and only then applied to the serving
release with the change's sequence number. After a crash in between, the next load of a release
applies the change (it is newer than what the release holds); the next release folds it in,
re-encoding the photo with its own model.

Layout::

    ADMIN_DIR/
      changes.sqlite     the change set (the photos live inside it)
      images/<file>      photos written out for ``/uploads/<file>`` (a cache, rebuilt from the
                         change set when missing)
      catalog.jsonl      the store of older versions: imported into the change set once
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vsearch.fsio import atomic_write_bytes
from vsearch.index.changeset import IMAGE_PREFIX, ChangeSet, photo_name

log = logging.getLogger(__name__)

__all__ = ["IMAGE_PREFIX", "AdminStore", "photo_name"]

IMAGES_DIR = "images"
LEGACY_CATALOG = "catalog.jsonl"  # the appendable JSON-lines store this one replaces


class AdminStore:
    """The change set of ``serving.admin_dir`` plus its photo cache."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.images = folder / IMAGES_DIR
        self.changes = ChangeSet.in_folder(folder)
        self._lock = threading.Lock()
        self._import_legacy()

    def add(
        self, row: dict[str, Any], photo: bytes, fmt: str, box: np.ndarray | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Record an upsert (row and photo, durable on return); returns ``(seq, stored row)``."""
        with self._lock:
            seq, stored = self.changes.record_upsert(row, photo, fmt, box)
            return seq, stored

    def delete(self, item_id: str) -> int:
        """Record a delete (durable on return); returns its sequence number."""
        return self.changes.record_delete(item_id)

    def rows(self, after: int = 0) -> pd.DataFrame:
        """Catalog rows of items upserted after change ``after`` and not deleted since."""
        return self.changes.rows(after=after)

    def photo(self, name: str) -> Path:
        """The file of an uploaded photo (written from the change set on first use).

        Raises:
            BadInput: the name has path characters or no such photo exists.
        """
        data, _ = self.changes.photo(name)  # checks the name; raises when unknown
        path = self.images / name
        with self._lock:
            if not path.is_file() or path.stat().st_size != len(data):
                self.images.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, data)
        return path

    def _import_legacy(self) -> None:
        """Move the rows of an older ``catalog.jsonl`` (and their photos) into the change set,
        once: only while the change set is still empty."""
        legacy = self.folder / LEGACY_CATALOG
        if not legacy.is_file() or self.changes.last_seq() > 0:
            return
        records = []
        for line in legacy.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line was never acknowledged
        moved = 0
        for rec in {str(r["item_id"]): r for r in records if r.get("item_id")}.values():
            name = str(rec.get("image", "")).removeprefix(IMAGE_PREFIX)
            path = self.images / name
            if not name or not path.is_file():
                log.warning("admin listing %s: no photo %s; not imported", rec["item_id"], name)
                continue
            fmt = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".gif": "GIF"}.get(
                path.suffix.lower(), ""
            )
            self.changes.record_upsert(rec, path.read_bytes(), fmt)
            moved += 1
        legacy.rename(legacy.with_name(LEGACY_CATALOG + ".imported"))
        log.info("imported %d admin listings from %s into the change set", moved, legacy)
