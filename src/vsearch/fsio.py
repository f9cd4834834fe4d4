"""Crash-safe file writes: one helper for "write a temp file, fsync, rename, fsync the folder".

Why one helper: every stage publishes files that a reader (DVC, the service, the next stage) may
open at any moment, and a crash or a full disk must never leave half a file under the final
name. The recipe is the same everywhere: write beside the target (same file system, so the
rename is atomic), flush it to disk, ``os.replace`` it over the target, then fsync the folder so
the rename itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def fsync_file(path: Path) -> None:
    """Flush a file's bytes (or, given a folder, its entries) to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (renames, new files) to stable storage."""
    fsync_file(folder)


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (before it is published by a rename)."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fsync_file(Path(root) / name)
        fsync_dir(Path(root))


@contextlib.contextmanager
def atomic_path(path: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path`` atomically.

    For writers that want a file name (``DataFrame.to_parquet``, ``torch.save``, ``Image.save``).
    On an exception the temp file is removed and ``path`` is left as it was.

    Args:
        path: the final file.
        durable: fsync the file and its folder (off only for scratch files nobody relies on).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def atomic_write_json(
    path: str | Path,
    obj: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = True,
    default: Any = str,
    durable: bool = True,
) -> Path:
    """Write ``obj`` as JSON (with a final newline) to ``path`` atomically; returns ``path``."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n"
    return atomic_write_text(path, text, durable=durable)
