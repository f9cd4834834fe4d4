"""Versioned index releases under ``indexes/``: staging, atomic publish, ``CURRENT``, rollback.

Why this shape: a build writes into a private staging folder and only a finished, checksummed
release is renamed to ``indexes/<version>/`` (a rename is atomic), after which the ``CURRENT``
pointer is replaced atomically (temp file, fsync, rename, fsync of the folder). A build that
fails or is killed therefore leaves ``CURRENT`` and every published release untouched; its
staging folder is removed by the next build. Serving processes open whatever ``CURRENT`` names
and refuse a release whose files or model fingerprint do not match.

Layout::

    indexes/
      CURRENT                 the serving version, e.g. "v0007"
      v0007/
        manifest.json         files + sha256, counts, model, params, timings, tuned search
        items.npy             internal id -> item_id (fixed-width utf-8)
        codes.npy             internal id -> binary code (read by compaction only)
        rerank.npy            internal id -> re-rank row (memory-mapped), rerank_quant.json
        partitions/p000/      binary.faissbin (+ quantizer.faiss), partition.json
        catalog.parquet       the indexed listings' catalog rows (vsearch.index.release_data)
        groups.parquet        item_id -> product_group
        changes.log           the only mutable file: upserts/deletes since the build
      .staging-v0008-<pid>/   a build in progress (or killed)
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import psutil

from vsearch.errors import BadInput
from vsearch.fsio import atomic_write_text, fsync_dir, fsync_tree
from vsearch.index.manifest import MANIFEST_FILE, Manifest

log = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
LOG_FILE = "changes.log"
STAGING_PREFIX = ".staging-"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_AUTO_RE = re.compile(r"^v(\d+)$")


class ReleaseError(BadInput):
    """A release is missing, damaged or does not fit the caller (exit code 2)."""


class NoRelease(ReleaseError):
    """No release to open (nothing built yet, or the named version does not exist)."""


class ChecksumMismatch(ReleaseError):
    """A release file differs from what its manifest recorded."""


class FingerprintMismatch(ReleaseError):
    """The release was built from another model's embeddings than the caller serves."""


def check_version_name(version: str) -> str:
    if not _VERSION_RE.match(version) or version.startswith(STAGING_PREFIX):
        raise BadInput(
            f"bad release version {version!r}: use letters, digits, '.', '_' or '-' "
            "(at most 64 characters, not starting with a dot)"
        )
    return version


def list_versions(indexes_dir: Path) -> list[str]:
    """Published releases (folders with a manifest), oldest first by creation time."""
    if not indexes_dir.is_dir():
        return []
    found = []
    for p in indexes_dir.iterdir():
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_FILE).is_file():
            try:
                created = Manifest.read(p).created_at
            except (ValueError, KeyError, TypeError):
                created = ""
            found.append((created, p.name))
    return [name for _, name in sorted(found)]


def current_version(indexes_dir: Path) -> str | None:
    path = indexes_dir / CURRENT_FILE
    if not path.is_file():
        return None
    name = path.read_text().strip()
    return name or None


def set_current(indexes_dir: Path, version: str) -> None:
    """Point ``CURRENT`` at ``version`` atomically (the version must be published)."""
    if not (indexes_dir / version / MANIFEST_FILE).is_file():
        raise NoRelease(f"release {version!r} does not exist under {indexes_dir}")
    atomic_write_text(indexes_dir / CURRENT_FILE, version + "\n")
    log.info("CURRENT -> %s", version)


def resolve(indexes_dir: Path, version: str | None = None) -> Path:
    """The folder of ``version`` (default: ``CURRENT``)."""
    name = version or current_version(indexes_dir)
    if name is None:
        raise NoRelease(
            f"no index release under {indexes_dir} (CURRENT missing): "
            "run `vsearch index build --embeddings DIR` first"
        )
    folder = indexes_dir / name
    if not (folder / MANIFEST_FILE).is_file():
        raise NoRelease(f"release {name!r} not found under {indexes_dir}")
    return folder


def next_version(indexes_dir: Path) -> str:
    """``v0001``, ``v0002``, ... (one more than the highest automatic version present)."""
    top = 0
    if indexes_dir.is_dir():
        for p in indexes_dir.iterdir():
            name = p.name.removeprefix(STAGING_PREFIX).split("-")[0]
            m = _AUTO_RE.match(name)
            if m:
                top = max(top, int(m.group(1)))
    return f"v{top + 1:04d}"


def clean_stale_staging(indexes_dir: Path) -> list[Path]:
    """Remove staging folders of builds whose process is gone (failed or killed)."""
    removed = []
    if not indexes_dir.is_dir():
        return removed
    for p in indexes_dir.iterdir():
        if p.is_dir() and p.name.startswith(STAGING_PREFIX):
            try:
                pid = int(p.name.rsplit("-", 1)[1])
            except (IndexError, ValueError):
                continue  # not a name a build wrote: whose it is is unknown, leave it
            if pid != os.getpid() and not (pid > 0 and psutil.pid_exists(pid)):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
                log.info("removed the staging folder of a dead build: %s", p.name)
    return removed


def staging_dir(indexes_dir: Path, version: str) -> Path:
    """A fresh private folder for building ``version``."""
    check_version_name(version)
    indexes_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(indexes_dir)
    if (indexes_dir / version).exists():
        raise BadInput(f"release {version!r} already exists under {indexes_dir}; pick another")
    path = indexes_dir / f"{STAGING_PREFIX}{version}-{os.getpid()}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir()
    return path


def publish(staging: Path, indexes_dir: Path, version: str) -> Path:
    """fsync the staged release and rename it to ``indexes/<version>`` (atomic)."""
    fsync_tree(staging)
    final = indexes_dir / version
    try:
        os.rename(staging, final)
    except OSError as exc:
        raise BadInput(f"cannot publish release {version!r}: {exc}") from None
    fsync_dir(indexes_dir)
    return final


def prune(indexes_dir: Path, keep: int) -> list[str]:
    """Delete the oldest releases beyond ``keep``, never ``CURRENT`` or the newest ones."""
    versions = list_versions(indexes_dir)
    current = current_version(indexes_dir)
    doomed = [v for v in versions[: max(0, len(versions) - keep)] if v != current]
    for v in doomed:
        shutil.rmtree(indexes_dir / v, ignore_errors=True)
        log.info("pruned old release %s", v)
    return doomed


def previous_version(indexes_dir: Path) -> str:
    """The release published just before ``CURRENT`` (the default rollback target)."""
    versions = list_versions(indexes_dir)
    current = current_version(indexes_dir)
    if current not in versions:
        raise NoRelease("CURRENT does not name a published release; nothing to roll back from")
    i = versions.index(current)
    if i == 0:
        raise NoRelease(f"{current} is the oldest release kept; nothing to roll back to")
    return versions[i - 1]


def open_manifest(
    folder: Path, expected_fingerprint: str | None = None, verify: bool = True
) -> Manifest:
    """Read and check a release before serving it.

    Args:
        folder: the release folder.
        expected_fingerprint: the fingerprint of the model the caller serves (``None``: any).
        verify: check every file's size and sha256 against the manifest.

    Raises:
        FingerprintMismatch: the release was built for another model.
        ChecksumMismatch: a file is missing or altered.
    """
    try:
        manifest = Manifest.read(folder)
    except (FileNotFoundError, ValueError, KeyError, TypeError) as exc:
        raise NoRelease(f"{folder}: unreadable manifest ({exc})") from None
    if expected_fingerprint is not None and manifest.model.fingerprint != expected_fingerprint:
        raise FingerprintMismatch(
            f"release {manifest.version} was built from model {manifest.model.name} "
            f"v{manifest.model.version} (fingerprint {manifest.model.fingerprint}), but the "
            f"caller serves fingerprint {expected_fingerprint}: rebuild the index with this "
            "model's embeddings (`vsearch index build`) or serve the matching model"
        )
    if verify:
        problems = manifest.verify_files(folder)
        if problems:
            raise ChecksumMismatch(
                f"release {manifest.version} failed verification ({'; '.join(problems[:5])}): "
                "the files were altered or damaged; roll back (`vsearch index rollback`) "
                "or rebuild it"
            )
    return manifest
