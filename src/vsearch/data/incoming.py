"""The incoming location: where a shop's exporter puts new drops for the nightly to take.

Why fsspec: the exporter may write to a local folder, a network share or object storage
(``s3://bucket/prefix``, ``gs://...``); ``ingest.incoming`` is a path or any fsspec URL and the
code is the same for all (fsspec comes with DVC; remote protocols need their fsspec package, e.g.
``s3fs``, as DVC's remotes do).

Rules a producer follows (README "Your own data"):

- one folder per drop directly under the incoming location, in the drop format; it is taken
  when it appears, so upload under a name starting with ``.`` or ``_`` and rename it when
  complete (a rename is atomic on file systems; on object storage, write ``drop.json`` last);
- drops are taken oldest first: by ``created_at`` in ``drop.json``, then by folder name;
- a taken drop moves to ``<incoming>/ingested/<name>/``; one that fails validation moves to
  ``<incoming>/rejected/<name>/`` with its validation report beside the data, and the night
  goes on with the next drop. Nothing is ever deleted.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from vsearch.contracts import DROP_MANIFEST

log = logging.getLogger(__name__)

INGESTED = "ingested"
REJECTED = "rejected"
REASON_FILE = "rejected.txt"
SET_ASIDE = (INGESTED, REJECTED)


@dataclass(frozen=True)
class IncomingDrop:
    """A drop folder found in the incoming location.

    Attributes:
        name: the folder name.
        path: its path in the incoming file system (fsspec form, no protocol).
        drop_id: ``drop.json``'s ``drop_id`` or the folder name.
        created_at: ``drop.json``'s ``created_at`` ("" when absent).
    """

    name: str
    path: str
    drop_id: str
    created_at: str


def _is_url(location: str) -> bool:
    return "://" in location


def open_location(location: str, repo_root: Path) -> tuple[Any, str]:
    """The fsspec file system and root path of ``ingest.incoming`` (relative: to the project)."""
    import fsspec

    if not _is_url(location):
        path = Path(location)
        location = str(path if path.is_absolute() else (repo_root / path).resolve())
    fs, root = fsspec.core.url_to_fs(location)
    return fs, str(root).rstrip("/")


def is_local(fs: Any) -> bool:
    """Whether ``fs`` is the local file system (drops are then validated in place)."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _manifest(fs: Any, path: str) -> dict[str, Any]:
    target = f"{path}/{DROP_MANIFEST}"
    if not fs.exists(target):
        return {}
    try:
        data = json.loads(fs.cat_file(target))
    except ValueError:
        return {}  # validation names the broken drop.json; listing must not stop on it
    return data if isinstance(data, dict) else {}


def _listed(location: str, repo_root: Path) -> list[IncomingDrop]:
    """Every drop folder waiting in ``location``, oldest first (see :func:`list_new`)."""
    fs, root = open_location(location, repo_root)
    if not fs.exists(root):
        return []
    found = []
    for entry in fs.ls(root, detail=True):
        if entry.get("type") != "directory":
            continue
        path = str(entry["name"]).rstrip("/")
        name = PurePosixPath(path).name
        if name.startswith((".", "_")) or name in SET_ASIDE:
            continue
        manifest = _manifest(fs, path)
        drop_id = str(manifest.get("drop_id") or name)
        found.append(IncomingDrop(name, path, drop_id, str(manifest.get("created_at") or "")))
    return sorted(found, key=lambda d: (d.created_at, d.name))


def list_new(location: str, repo_root: Path, ingested: set[str]) -> list[IncomingDrop]:
    """Drop folders in ``location`` not in ``ingested`` (drop ids), oldest first.

    Folders whose names start with ``.`` or ``_`` (uploads in progress) and the ``ingested/``
    and ``rejected/`` folders are left alone. A missing location holds no drops.
    """
    return [d for d in _listed(location, repo_root) if d.drop_id not in ingested]


def list_repeated(location: str, repo_root: Path, ingested: set[str]) -> list[IncomingDrop]:
    """Drop folders in ``location`` whose drop id is already ingested: a drop is immutable
    once ingested, so these are set aside (rejected, with the reason), never re-read."""
    return [d for d in _listed(location, repo_root) if d.drop_id in ingested]


def repeated_reason(drop: IncomingDrop) -> str:
    """Why a repeated drop id is refused, and what the producer should do instead."""
    return (
        f"drop id {drop.drop_id!r} is already ingested (see the drop ledger): ingested drops "
        "are immutable; send corrections as a new drop (a delta, or a snapshot) with a new "
        "drop_id"
    )


def origin(drop: IncomingDrop, location: str) -> str:
    """Where ``drop`` lives, as a person would name it (the URL for a remote location)."""
    return f"{location.rstrip('/')}/{drop.name}" if _is_url(location) else drop.path


def fetch(drop: IncomingDrop, location: str, repo_root: Path, scratch: Path) -> Path:
    """A local folder holding ``drop``: the folder itself when local, else a fresh copy."""
    fs, _ = open_location(location, repo_root)
    if is_local(fs):
        return Path(drop.path)
    target = scratch / drop.name
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    fs.get(drop.path.rstrip("/") + "/", str(target) + "/", recursive=True)
    return target


def set_aside(
    drop: IncomingDrop,
    location: str,
    repo_root: Path,
    where: str,
    *,
    reason: str | None = None,
    report: Path | None = None,
) -> str:
    """Move ``drop`` to ``<location>/<where>/<name>/`` (a suffix if that name is taken).

    A rejected drop gets its validation report and the reason (``rejected.txt``) beside it, so
    the producer sees what to fix in one place. Returns the new path.
    """
    fs, root = open_location(location, repo_root)
    base = f"{root}/{where}"
    fs.makedirs(base, exist_ok=True)
    target = f"{base}/{drop.name}"
    if fs.exists(target):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = f"{target}.{stamp}"
    fs.mv(drop.path, target, recursive=True)
    if reason is not None:
        fs.pipe_file(f"{target}/{REASON_FILE}", reason.encode())
    if report is not None and Path(report).is_file():
        fs.pipe_file(f"{target}/{Path(report).name}", Path(report).read_bytes())
    log.info("incoming drop %s moved to %s", drop.name, target)
    return target
