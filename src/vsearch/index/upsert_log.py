"""Durable change log of a release: upserts and deletes, fsync'd before they are acknowledged.

Why a log: the catalog changes every minute, a rebuild takes minutes to hours, and an
acknowledged write must survive a crash (``kill -9``, power loss). Each write is appended as one
checksummed record and ``fsync``'d *before* the call returns; opening a release replays its log,
so the live state is always "release + log". Compaction folds the log into a new release.

Several processes may share one release (service workers, an admin CLI). An exclusive
``flock`` serialises appends; every process reads records appended by the others (``read_new``)
and so converges on the same state. A record torn by a crash mid-write fails its length or CRC
check: it was never acknowledged, and the next writer truncates it.

Record layout (little-endian)::

    magic "VSLG" | version u8 | op u8 | reserved u16 | seq u64 | payload_len u32 | crc32 u32
    payload (op-specific, see ``_encode_upsert``)

An upsert or delete made for an entry of the project's change set
(:mod:`vsearch.index.changeset`) carries that entry's sequence number (``ref``), so a release
knows which admin changes it already holds and a reload never applies one twice.

``seal`` marks the log closed because compaction folded it into a newer release; ``unseal``
re-opens it after a rollback to this release.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vsearch.fsio import fsync_dir

MAGIC = b"VSLG"
VERSION = 1
_HEADER = struct.Struct("<4sBBHQII")
_UPSERT_HEAD = struct.Struct("<IHHI")
Op = Literal["upsert", "delete", "seal", "unseal"]
_OPS: dict[str, int] = {"upsert": 1, "delete": 2, "seal": 3, "unseal": 4}
_OP_NAMES = {v: k for k, v in _OPS.items()}


class LogCorrupt(RuntimeError):
    """A record *before* the tail failed its checksum: the file was damaged, not torn."""


@dataclass(frozen=True)
class Change:
    """One log record.

    Attributes:
        seq: 1, 2, ... within this log.
        op: ``upsert``, ``delete``, ``seal`` or ``unseal``.
        item_ids: ``str[n]`` (upsert/delete).
        categories: ``str[n]`` (upsert).
        codes: ``uint8[n, bits/8]`` (upsert).
        vectors: ``float32[n, d]`` (upsert).
        target: the release this log was sealed into (seal).
        ref: the change-set sequence number this write carries out (admin writes), else None.
    """

    seq: int
    op: Op
    item_ids: np.ndarray
    categories: np.ndarray | None = None
    codes: np.ndarray | None = None
    vectors: np.ndarray | None = None
    target: str | None = None
    ref: int | None = None


def _encode_upsert(
    item_ids: np.ndarray,
    categories: np.ndarray,
    codes: np.ndarray,
    vectors: np.ndarray,
    ref: int | None = None,
) -> bytes:
    body = {"ids": list(item_ids), "categories": list(categories)}
    if ref is not None:
        body["ref"] = int(ref)
    names = json.dumps(body).encode()
    head = _UPSERT_HEAD.pack(len(item_ids), codes.shape[1], vectors.shape[1], len(names))
    return head + names + codes.tobytes() + vectors.astype("<f4").tobytes()


def _decode(seq: int, op: Op, payload: bytes) -> Change:
    if op == "upsert":
        n, nbytes, dim, name_len = _UPSERT_HEAD.unpack_from(payload)
        pos = _UPSERT_HEAD.size
        names = json.loads(payload[pos : pos + name_len])
        pos += name_len
        codes = np.frombuffer(payload, np.uint8, n * nbytes, pos).reshape(n, nbytes)
        pos += n * nbytes
        vectors = np.frombuffer(payload, "<f4", n * dim, pos).reshape(n, dim)
        return Change(
            seq,
            op,
            np.asarray(names["ids"], dtype=object),
            np.asarray(names["categories"], dtype=object),
            codes.copy(),
            vectors.astype(np.float32),
            ref=names.get("ref"),
        )
    body = json.loads(payload) if payload else {}
    ids = np.asarray(body.get("ids", []), dtype=object)
    return Change(seq, op, ids, target=body.get("target"), ref=body.get("ref"))


class ChangeLog:
    """Append-only, fsync'd, multi-process change log of one release.

    Args:
        path: the log file (created if missing).
        fsync: flush to stable storage before acknowledging (turn off only for benchmarks of
            the in-memory path; never in production).
    """

    def __init__(self, path: str | Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if created:
            fsync_dir(self.path.parent)
        self._offset = 0  # bytes of this file already handed to the caller
        self.last_seq = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ChangeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock across processes (held while reading the tail and appending)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def has_new(self) -> bool:
        """Cheap check (one ``fstat``) whether another process appended since we last read."""
        return self.size() > self._offset

    def read_new(self, repair: bool = False) -> list[Change]:
        """Records appended since the last call (by anyone), in order.

        Args:
            repair: truncate a torn tail (only safe under :meth:`locked`, where no writer can
                be mid-append). Without it a torn tail is left for the next writer.

        Raises:
            LogCorrupt: a damaged record is followed by valid data (not a torn tail).
        """
        end = self.size()
        if end <= self._offset:
            return []
        data = os.pread(self._fd, end - self._offset, self._offset)
        out: list[Change] = []
        pos = 0
        while pos < len(data):
            rec = self._parse(data, pos)
            if rec is None:
                break
            change, size = rec
            out.append(change)
            pos += size
        if pos < len(data) and repair:
            # An incomplete record: torn by a crash (never acknowledged). Readers without the
            # lock leave it alone: it may be a record another process is writing right now.
            os.ftruncate(self._fd, self._offset + pos)
            if self.fsync:
                os.fsync(self._fd)
        self._offset += pos
        if out:
            self.last_seq = out[-1].seq
        return out

    def _parse(self, data: bytes, pos: int) -> tuple[Change, int] | None:
        if len(data) - pos < _HEADER.size:
            return None
        magic, version, op, _, seq, length, crc = _HEADER.unpack_from(data, pos)
        if magic != MAGIC or version != VERSION or op not in _OP_NAMES:
            return self._bad(data, pos)
        start = pos + _HEADER.size
        if len(data) - start < length:
            return None
        payload = data[start : start + length]
        if zlib.crc32(payload, zlib.crc32(struct.pack("<BQ", op, seq))) != crc:
            return self._bad(data, pos)
        return _decode(seq, _OP_NAMES[op], payload), _HEADER.size + length

    @staticmethod
    def _bad(data: bytes, pos: int) -> None:
        # A torn write damages only the last record; anything valid after it means corruption.
        if MAGIC in data[pos + 1 :]:
            raise LogCorrupt(
                f"change log damaged at byte {pos}: a record fails its checksum but later "
                "records follow; restore the release from a backup or rebuild it"
            )
        return None

    def _append(self, op: Op, payload: bytes) -> int:
        """Append one record (caller holds :meth:`locked` and has read the tail)."""
        seq = self.last_seq + 1
        code = _OPS[op]
        crc = zlib.crc32(payload, zlib.crc32(struct.pack("<BQ", code, seq)))
        record = _HEADER.pack(MAGIC, VERSION, code, 0, seq, len(payload), crc) + payload
        written = os.write(self._fd, record)
        if written != len(record):
            os.ftruncate(self._fd, self._offset)
            raise OSError(f"short write to {self.path} ({written} of {len(record)} bytes)")
        if self.fsync:
            os.fsync(self._fd)
        self._offset += len(record)
        self.last_seq = seq
        return seq

    def append_upsert(
        self,
        item_ids: np.ndarray,
        categories: np.ndarray,
        codes: np.ndarray,
        vectors: np.ndarray,
        ref: int | None = None,
    ) -> Change:
        """Durably record an upsert batch (call under :meth:`locked`, after :meth:`read_new`)."""
        payload = _encode_upsert(item_ids, categories, codes, vectors, ref)
        seq = self._append("upsert", payload)
        return Change(seq, "upsert", item_ids, categories, codes, vectors, ref=ref)

    def append_delete(self, item_ids: np.ndarray, ref: int | None = None) -> Change:
        """Durably record deletes (call under :meth:`locked`, after :meth:`read_new`)."""
        body: dict = {"ids": list(item_ids)}
        if ref is not None:
            body["ref"] = int(ref)
        seq = self._append("delete", json.dumps(body).encode())
        return Change(seq, "delete", item_ids, ref=ref)

    def append_marker(self, op: Literal["seal", "unseal"], target: str | None = None) -> Change:
        """Seal (compaction folded this log into ``target``) or unseal (rollback)."""
        seq = self._append(op, json.dumps({"target": target}).encode())
        return Change(seq, op, np.empty(0, dtype=object), target=target)


def copy_records(changes: list[Change], dest: ChangeLog) -> None:
    """Re-append ``changes`` (upserts/deletes) to another log, e.g. a new release's tail."""
    with dest.locked():
        dest.read_new(repair=True)
        for ch in changes:
            if ch.op == "upsert":
                dest.append_upsert(ch.item_ids, ch.categories, ch.codes, ch.vectors, ch.ref)
            elif ch.op == "delete":
                dest.append_delete(ch.item_ids, ch.ref)
