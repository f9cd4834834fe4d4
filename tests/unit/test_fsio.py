"""Atomic writes: the old file survives a failed write, and no temp file is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsearch.fsio import atomic_path, atomic_write_json, atomic_write_text


def test_atomic_path_keeps_the_old_file_on_an_exception(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="half-way"), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("half-way")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_replaces_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_write_helpers(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_json(tmp_path / "b.json", {"b": 1, "a": 2})
    assert (tmp_path / "a.txt").read_text() == "x"
    assert (tmp_path / "b.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
