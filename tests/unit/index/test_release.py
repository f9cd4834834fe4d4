"""Releases: atomic CURRENT, version naming, pruning, rollback, refusing damaged or foreign ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vsearch.errors import BadInput
from vsearch.index.builder import build_release, rollback
from vsearch.index.engine import Engine
from vsearch.index.manifest import Manifest
from vsearch.index.release import (
    STAGING_PREFIX,
    ChecksumMismatch,
    FingerprintMismatch,
    NoRelease,
    clean_stale_staging,
    current_version,
    list_versions,
    next_version,
    open_manifest,
    resolve,
)

pytestmark = pytest.mark.unit


def test_build_writes_a_checksummed_release(indexes_dir: Path, world) -> None:
    assert current_version(indexes_dir) == "v0001"
    folder = resolve(indexes_dir)
    m = Manifest.read(folder)
    assert m.n_items == len(world.catalog) and sum(p.n for p in m.partitions) == m.n_items
    assert m.model == world.catalog.model and m.bits == 256 and m.dim == 256
    assert {p.kind for p in m.partitions} <= {"flat", "ivf"} and "ivf" in {
        p.kind for p in m.partitions
    }
    assert "changes.log" not in m.files and "rerank.npy" in m.files
    assert all(len(f["sha256"]) == 64 for f in m.files.values())
    assert m.params["flat_max"] == 500 and m.timings["total_s"] > 0
    # partitions are contiguous internal id ranges, in order
    firsts = [p.first_id for p in m.partitions]
    sizes = [p.n for p in m.partitions]
    assert firsts == list(np.cumsum([0, *sizes[:-1]]))
    assert open_manifest(folder).version == "v0001"


def test_checksum_mismatch_is_refused(indexes_dir: Path) -> None:
    folder = resolve(indexes_dir)
    store = folder / "rerank.npy"
    data = bytearray(store.read_bytes())
    data[-1] ^= 0x01
    store.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match=r"rerank\.npy: sha256 differs.*roll back"):
        Engine.open(folder)
    (folder / "items.npy").unlink()
    with pytest.raises(ChecksumMismatch, match="items.npy: missing"):
        open_manifest(folder)


def test_fingerprint_mismatch_is_refused_with_a_clear_error(indexes_dir: Path, world) -> None:
    folder = resolve(indexes_dir)
    with pytest.raises(
        FingerprintMismatch,
        match=r"built from model synthetic-projection.*"
        r"caller serves fingerprint other-fp.*rebuild",
    ):
        Engine.open(folder, expected_model="other-fp")
    with Engine.open(folder, expected_model=world.catalog.model) as e:  # the right one opens
        assert len(e) == len(world.catalog)


def test_versions_prune_and_rollback(indexes_dir: Path, world, index_settings) -> None:
    small = world.catalog.subset(np.arange(1000))
    build_release(small, index_settings, indexes_dir)
    build_release(small, index_settings, indexes_dir, version="nightly-2")
    assert list_versions(indexes_dir) == ["v0001", "v0002", "nightly-2"]
    assert current_version(indexes_dir) == "nightly-2" and next_version(indexes_dir) == "v0003"
    assert rollback(indexes_dir) == "v0002"
    assert current_version(indexes_dir) == "v0002"
    build_release(small, index_settings.model_copy(update={"keep_releases": 2}), indexes_dir)
    # keep 2: the newest (v0003, CURRENT) and nightly-2; v0001 and v0002 pruned
    assert list_versions(indexes_dir) == ["nightly-2", "v0003"]
    with pytest.raises(NoRelease):
        rollback(indexes_dir, to="v0001")


def test_bad_version_names_and_duplicates(indexes_dir: Path, world, index_settings) -> None:
    with pytest.raises(BadInput, match="bad release version"):
        build_release(world.catalog, index_settings, indexes_dir, version="../evil")
    with pytest.raises(BadInput, match="already exists"):
        build_release(world.catalog, index_settings, indexes_dir, version="v0001")
    assert current_version(indexes_dir) == "v0001"


def test_failed_build_leaves_current_and_no_staging(indexes_dir: Path, world, index_settings):
    def broken(fn, jobs):
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError, match="worker died"):
        build_release(world.catalog, index_settings, indexes_dir, map_fn=broken)
    assert current_version(indexes_dir) == "v0001"
    assert not [p for p in indexes_dir.iterdir() if p.name.startswith(STAGING_PREFIX)]


def test_stale_staging_of_dead_builds_is_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    stale = tmp_path / f"{STAGING_PREFIX}v0009-{pid}"
    alive = tmp_path / f"{STAGING_PREFIX}v0010-{os.getpid()}"
    stale.mkdir()
    alive.mkdir()
    assert clean_stale_staging(tmp_path) == [stale]
    assert alive.exists()


def test_no_release_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoRelease, match="vsearch index build"):
        Engine.open_current(tmp_path / "nothing")
