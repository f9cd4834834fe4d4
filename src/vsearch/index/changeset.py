"""The project's catalog change set: admin upserts and deletes, with their photos, in SQLite.

Why a project-level record beside each release's ``changes.log``: a release's log holds codes
and vectors, which only mean something to the model that made them, so a release built by a
newer model cannot take them over. The change set holds what any model needs to redo a change:
the listing's fields and its photo (and the box the admin drew), or the id of a deleted
listing. The next release folds it in (:mod:`vsearch.search.changes` re-embeds the photos with
the release's model) and records the last sequence number it folded (``manifest.changes``);
the service applies anything newer when it loads a release, so restart, reload and rollback all
see every acknowledged change.

Why SQLite in WAL mode: one transaction per change writes the row and its photo together
(never a row without its photo), ``synchronous=FULL`` makes a committed change survive a power
loss, several processes (service workers, an index build) read while one writes, and a torn
write cannot leave a half record behind (unlike an appended JSON line).

Schema (one table, append-only; the latest change of an item id wins)::

    changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT 'upsert'|'delete', item_id TEXT,
            fields TEXT (JSON catalog row), photo BLOB, photo_format TEXT, photo_name TEXT,
            box TEXT (JSON xyxy or null), at TEXT (UTC ISO time))
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vsearch.errors import BadInput

CHANGESET_FILE = "changes.sqlite"
IMAGE_PREFIX = "admin/"  # catalog ``image`` values of admin photos (served at /uploads/)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_HASH_CHARS = 10  # disambiguates item ids that sanitise to the same file name
EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}
_BUSY_TIMEOUT_S = 30.0  # another process holding the write lock (a long fold read never does)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    item_id TEXT NOT NULL,
    fields TEXT,
    photo BLOB,
    photo_format TEXT,
    photo_name TEXT,
    box TEXT,
    at TEXT NOT NULL,
    CHECK (op = 'delete' OR (photo IS NOT NULL AND fields IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS changes_item ON changes (item_id, seq);
CREATE INDEX IF NOT EXISTS changes_photo ON changes (photo_name);
"""


def photo_name(item_id: str, fmt: str) -> str:
    """A file name for an item's photo: readable, collision-free, no path characters."""
    stem = _SAFE.sub("_", item_id).strip("._")[:64] or "item"
    digest = hashlib.sha256(item_id.encode()).hexdigest()[:_NAME_HASH_CHARS]
    return f"{stem}-{digest}{EXTENSIONS.get(fmt.upper(), '.img')}"


@dataclass(frozen=True)
class ItemChange:
    """The latest change of one item id.

    Attributes:
        seq: the change's sequence number (1, 2, ... in the change set).
        op: ``upsert`` or ``delete``.
        item_id: the listing.
        fields: the catalog row (upsert; ``image`` is ``admin/<photo_name>``).
        photo: the photo's bytes (upsert).
        box: normalised xyxy the admin drew, else ``None`` (the model detects).
    """

    seq: int
    op: str
    item_id: str
    fields: dict[str, Any] | None = None
    photo: bytes | None = None
    box: tuple[float, float, float, float] | None = None


class ChangeSet:
    """The change set of a project (``serving.admin_dir/changes.sqlite``).

    Thread-safe within a process (one connection per thread); safe across processes
    (SQLite's locks; WAL lets readers run beside the writer).

    Args:
        path: the database file, created (with its folder) by the first write; until then
            the change set reads as empty.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._schema_ready = False

    @classmethod
    def in_folder(cls, folder: str | Path) -> ChangeSet:
        return cls(Path(folder) / CHANGESET_FILE)

    def _connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")  # a commit survives a power loss
            self._local.con = con
        return con

    def exists(self) -> bool:
        return self.path.is_file()

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of a query; none while the database or its table does not exist yet."""
        if not self.exists():
            return []
        try:
            return self._connect().execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # created by another process a moment ago
                return []
            raise

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if not self._schema_ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._connect().executescript(_SCHEMA)
                self._schema_ready = True
            con = self._connect()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- writes ------------------------------------------------------------------------------

    def record_upsert(
        self,
        fields: dict[str, Any],
        photo: bytes,
        fmt: str,
        box: np.ndarray | list[float] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Durably record an upsert (row and photo in one transaction).

        Args:
            fields: catalog fields; ``item_id`` and ``category`` are required.
            photo: the image bytes (already checked by the caller's decode).
            fmt: the PIL format name of the photo (names the file served at ``/uploads/``).
            box: the product's box (normalised xyxy), or ``None``.

        Returns:
            ``(seq, stored row)`` (the row with ``image`` and ``listed_at`` set).
        """
        item_id = str(fields.get("item_id") or "")
        if not item_id or not fields.get("category"):
            raise BadInput("an upsert needs an item_id and a category")
        if not photo:
            raise BadInput(f"upsert of {item_id!r}: the photo is empty")
        name = photo_name(item_id, fmt)
        stored = {
            **fields,
            "item_id": item_id,
            "image": IMAGE_PREFIX + name,
            "listed_at": fields.get("listed_at") or datetime.now(UTC).isoformat(),
        }
        box_json = None if box is None else json.dumps([float(x) for x in np.ravel(box)])
        with self._write() as con:
            cur = con.execute(
                "INSERT INTO changes (op, item_id, fields, photo, photo_format, photo_name, box, "
                "at) VALUES ('upsert', ?, ?, ?, ?, ?, ?, ?)",
                (
                    item_id,
                    json.dumps(stored, default=str),
                    sqlite3.Binary(photo),
                    fmt,
                    name,
                    box_json,
                    _now(),
                ),
            )
            return int(cur.lastrowid), stored

    def record_delete(self, item_id: str) -> int:
        """Durably record a delete; returns its sequence number."""
        if not item_id:
            raise BadInput("a delete needs an item_id")
        with self._write() as con:
            cur = con.execute(
                "INSERT INTO changes (op, item_id, at) VALUES ('delete', ?, ?)",
                (str(item_id), _now()),
            )
            return int(cur.lastrowid)

    # -- reads -------------------------------------------------------------------------------

    def last_seq(self) -> int:
        """The newest change's sequence number (0 when there is none)."""
        rows = self._read("SELECT COALESCE(MAX(seq), 0) FROM changes")
        return int(rows[0][0]) if rows else 0

    def latest(self, after: int = 0, upto: int | None = None) -> list[ItemChange]:
        """The latest change of each item changed in ``(after, upto]``, in sequence order.

        Args:
            after: changes at or below this sequence number are left out (already folded).
            upto: changes above it are left out (a fold reads a fixed prefix; default: all).
        """
        upto = self.last_seq() if upto is None else upto
        rows = self._read(
            "SELECT c.seq, c.op, c.item_id, c.fields, c.photo, c.box FROM changes c "
            "JOIN (SELECT item_id, MAX(seq) AS seq FROM changes WHERE seq > ? AND seq <= ? "
            "GROUP BY item_id) last ON c.seq = last.seq ORDER BY c.seq",
            (after, upto),
        )
        out = []
        for seq, op, item_id, fields, photo, box in rows:
            out.append(
                ItemChange(
                    int(seq),
                    str(op),
                    str(item_id),
                    json.loads(fields) if fields else None,
                    bytes(photo) if photo is not None else None,
                    tuple(json.loads(box)) if box else None,
                )
            )
        return out

    def rows(self, after: int = 0, upto: int | None = None) -> pd.DataFrame:
        """Catalog rows of the items whose latest change in ``(after, upto]`` is an upsert."""
        records = [c.fields for c in self.latest(after, upto) if c.op == "upsert" and c.fields]
        return pd.DataFrame.from_records(records) if records else pd.DataFrame()

    def counts(self) -> dict[str, int]:
        """Changes recorded, by operation (for ``/info`` and ``vsearch index info``)."""
        out = {"upsert": 0, "delete": 0}
        for op, n in self._read("SELECT op, COUNT(*) FROM changes GROUP BY op"):
            out[str(op)] = int(n)
        out["last_seq"] = self.last_seq()
        return out

    def photo(self, name: str) -> tuple[bytes, str]:
        """The bytes and format of an uploaded photo by its file name (``/uploads/<name>``).

        Raises:
            BadInput: the name has path characters or no such photo exists.
        """
        if not name or _SAFE.search(name) or name.startswith("."):
            raise BadInput(f"bad photo name {name!r}")
        rows = self._read(
            "SELECT photo, photo_format FROM changes WHERE photo_name = ? "
            "ORDER BY seq DESC LIMIT 1",
            (name,),
        )
        if not rows:
            raise BadInput(f"no uploaded photo {name!r}")
        return bytes(rows[0][0]), str(rows[0][1] or "")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
