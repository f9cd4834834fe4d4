"""Faults injected into the index commands as users run them (``vsearch index build`` and
``vsearch index compact`` in their own processes): ``kill -9`` mid-way and a full disk leave
``CURRENT`` on the old release, complete and verifiable, and the next run works.

The kill comes while the command's staging folder exists (the release being written), found by
polling the indexes folder; the disk is a 2 MB tmpfs mounted over the indexes folder (skipped
where mounting is not permitted).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from vsearch.index.builder import build_release
from vsearch.index.embeddings import EmbeddingSet
from vsearch.index.engine import Engine
from vsearch.index.release import STAGING_PREFIX, current_version
from vsearch.index.synthetic import SyntheticSpec, make_world
from vsearch.local.env import TELEMETRY_OFF
from vsearch.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SRC = Path(__file__).resolve().parents[3] / "src"
CLI = [sys.executable, "-c", "from vsearch.cli import app; app()"]
INDEX = {"flat_max": 300, "ivf_list_size": 20, "ivf_quantizer_flat_max": 8, "rerank_depth": 50}
SMALL, LARGE = 1500, 60_000  # the first release; the one killed (long enough to catch)
TMPFS_BYTES = 2 * 2**20
POLL_S = 0.005
TIMEOUT_S = 300


def _project(tmp: Path, params_path: Path) -> tuple[Path, Path]:
    """A project root with params (small index settings, indexes/ and admin/ inside)."""
    raw = yaml.safe_load(params_path.read_text())
    raw.setdefault("index", {}).update(INDEX)
    raw.setdefault("project", {}).update({"indexes_dir": "indexes", "threads": 1})
    raw.setdefault("serving", {})["admin_dir"] = "admin"
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    return tmp, params


def _embeddings(tmp: Path, items: int, seed: int) -> tuple[Path, EmbeddingSet]:
    world = make_world(SyntheticSpec(items=items, categories=4, seed=seed, encoder_sample=1500))
    folder = tmp / f"emb-{items}-{seed}"
    world.catalog.save(folder)
    return folder, world.catalog


def _start(root: Path, params: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, **TELEMETRY_OFF, "PYTHONPATH": f"{SRC}{os.pathsep}"}
    return subprocess.Popen(
        [*CLI, "--params", str(params), "index", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _staging(indexes: Path) -> list[Path]:
    return [p for p in indexes.iterdir() if p.name.startswith(STAGING_PREFIX)]


def _kill_while_staging(proc: subprocess.Popen, indexes: Path) -> None:
    """SIGKILL ``proc`` as soon as its staging folder appears (fails if it never does)."""
    deadline = time.monotonic() + TIMEOUT_S
    while not _staging(indexes):
        assert proc.poll() is None, f"finished before the kill: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no staging folder appeared"
        time.sleep(POLL_S)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(TIMEOUT_S) == -signal.SIGKILL
    proc.communicate()


def _serves(indexes: Path, version: str, items: int) -> None:
    """``CURRENT`` is ``version``, every file matches its checksum, and it answers searches."""
    assert current_version(indexes) == version
    with Engine.open_current(indexes, verify=True) as engine:
        assert engine.version == version and len(engine) == items
        q = make_world(SyntheticSpec(items=SMALL, categories=4, seed=5, encoder_sample=1500))
        queries = q.queries(10, seed=1)
        res = engine.search(queries.codes, queries.vectors, [[c] for c in queries.category], k=5)
        assert len(res.item_ids) == len(queries.codes)


def test_kill9_mid_build_keeps_current_and_the_next_build_works(
    tmp_path: Path, params_path: Path
) -> None:
    root, params = _project(tmp_path, params_path)
    indexes = root / "indexes"
    small, _ = _embeddings(tmp_path, SMALL, 5)
    large, _ = _embeddings(tmp_path, LARGE, 6)
    build = _start(root, params, "build", "--embeddings", str(small), "--no-catalog")
    assert build.wait(TIMEOUT_S) == 0, build.communicate()[1][-2000:]
    _serves(indexes, "v0001", SMALL)

    proc = _start(root, params, "build", "--embeddings", str(large), "--no-catalog")
    _kill_while_staging(proc, indexes)
    _serves(indexes, "v0001", SMALL)  # the dead build left CURRENT and v0001 whole

    again = _start(root, params, "build", "--embeddings", str(small), "--no-catalog")
    assert again.wait(TIMEOUT_S) == 0, again.communicate()[1][-2000:]
    assert not _staging(indexes)  # the next build cleared the dead one's staging folder
    _serves(indexes, current_version(indexes) or "", SMALL)
    assert current_version(indexes) != "v0001"


def test_kill9_mid_compaction_keeps_current_and_its_live_changes(
    tmp_path: Path, params_path: Path
) -> None:
    root, params = _project(tmp_path, params_path)
    indexes = root / "indexes"
    settings = load_settings(params).index
    folder, catalog = _embeddings(tmp_path, LARGE, 7)
    build_release(catalog, settings, indexes, extra={"source": str(folder)})
    extra = make_world(SyntheticSpec(items=SMALL, categories=4, seed=8, encoder_sample=1500))
    upserted = extra.catalog.item_ids[:200]
    ups = EmbeddingSet(
        np.asarray([f"live-{i}" for i in upserted], dtype=object),
        extra.catalog.categories[:200],
        extra.catalog.codes[:200],
        extra.catalog.vectors[:200],
        catalog.model,
    )
    with Engine.open_current(indexes, settings) as engine:
        engine.upsert(ups)
        engine.delete(list(catalog.item_ids[:50]))
    live = LARGE + 200 - 50

    proc = _start(root, params, "compact")
    _kill_while_staging(proc, indexes)
    assert current_version(indexes) == "v0001"
    with Engine.open_current(indexes, settings, verify=True) as engine:  # log replayed
        assert len(engine) == live
        assert (engine.lookup(list(ups.item_ids)) >= 0).all()
        assert (engine.lookup(list(catalog.item_ids[:50])) == -1).all()

    again = _start(root, params, "compact")
    assert again.wait(TIMEOUT_S) == 0, again.communicate()[1][-2000:]
    assert current_version(indexes) == "v0002" and not _staging(indexes)
    with Engine.open_current(indexes, settings, verify=True) as engine:
        assert len(engine) == live and (engine.lookup(list(ups.item_ids)) >= 0).all()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs at ``tmp_path/disk`` (root only; skipped where mount is refused)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_disk_full_mid_build_fails_cleanly_and_keeps_current(
    tmp_path: Path, params_path: Path, small_disk: Path
) -> None:
    root, params = _project(small_disk, params_path)  # params on the disk too: tiny
    indexes = root / "indexes"
    small, _ = _embeddings(tmp_path, SMALL, 5)
    large, _ = _embeddings(tmp_path, LARGE, 6)
    first = _start(root, params, "build", "--embeddings", str(small), "--no-catalog")
    assert first.wait(TIMEOUT_S) == 0, first.communicate()[1][-2000:]
    before = sorted(p.name for p in indexes.iterdir())

    full = _start(root, params, "build", "--embeddings", str(large), "--no-catalog")
    _, err = full.communicate(timeout=TIMEOUT_S)
    assert full.returncode == 1, err[-2000:]
    assert "error: the disk is full" in err and os.strerror(errno.ENOSPC) in err, err[-2000:]
    assert "unexpected error" not in err  # an environment condition, said as such
    assert sorted(p.name for p in indexes.iterdir()) == before  # nothing half-written
    _serves(indexes, "v0001", SMALL)
