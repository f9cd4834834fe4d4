"""DVC round trip: add → push → delete working copy and cache → pull → identical bytes."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from vsearch.data import dvc
from vsearch.data.ingest import version

pytestmark = pytest.mark.integration


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_add_push_remove_pull_identical(scratch_repo: Path) -> None:
    drop = scratch_repo / "data" / "raw" / "d1"
    (drop / "images").mkdir(parents=True)
    (drop / "catalog.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 40)
    for i in range(5):
        (drop / "images" / f"{i}.jpg").write_bytes(bytes([i]) * (1000 + i))
    before = _digest(drop)

    digest = version(drop, scratch_repo, "local", push=True)
    assert digest.endswith(".dir")
    assert dvc.content_hash(drop) == digest
    assert "/d1" in (drop.parent / ".gitignore").read_text()  # git ignores the data, tracks .dvc

    shutil.rmtree(drop)
    shutil.rmtree(scratch_repo / ".dvc" / "cache")
    dvc.pull(drop, scratch_repo, "local")
    assert _digest(drop) == before


def test_hash_changes_with_content(scratch_repo: Path) -> None:
    a = scratch_repo / "a"
    a.mkdir()
    (a / "x.txt").write_text("one")
    h1 = version(a, scratch_repo, "local", push=False)
    (a / "x.txt").write_text("two")
    h2 = version(a, scratch_repo, "local", push=False)
    assert h1 != h2


def test_untracked_path_has_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(dvc.DvcError, match="not tracked by DVC"):
        dvc.content_hash(tmp_path / "nothing")
