"""The incoming location: which folders are new drops, in which order, and setting one aside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsearch.data.incoming import INGESTED, REJECTED, list_new, set_aside

pytestmark = pytest.mark.unit


def _drop(inbox: Path, name: str, **manifest: str) -> None:
    (inbox / name).mkdir(parents=True)
    (inbox / name / "catalog.parquet").write_bytes(b"x")
    if manifest:
        (inbox / name / "drop.json").write_text(json.dumps(manifest))


def test_new_drops_oldest_first_uploads_and_set_aside_folders_left_alone(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    _drop(inbox, "z-first", created_at="2026-11-01T00:00:00Z")
    _drop(inbox, "a-second", created_at="2026-11-02T00:00:00Z")
    _drop(inbox, "named", drop_id="shop-7", created_at="2026-11-03T00:00:00Z")
    _drop(inbox, "_uploading")
    _drop(inbox, ".hidden")
    _drop(inbox, "old", drop_id="done-before")
    (inbox / REJECTED).mkdir()
    (inbox / INGESTED).mkdir()
    (inbox / "notes.txt").write_text("not a drop")

    found = list_new(str(inbox), tmp_path, ingested={"done-before"})

    assert [(d.name, d.drop_id) for d in found] == [
        ("z-first", "z-first"),
        ("a-second", "a-second"),
        ("named", "shop-7"),
    ]
    assert list_new(str(tmp_path / "missing"), tmp_path, set()) == []
    assert [d.name for d in list_new("in", tmp_path, {"done-before"})] == [
        "z-first",
        "a-second",
        "named",
    ]  # a relative location is relative to the project


def test_set_aside_keeps_everything_and_never_overwrites(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    report = tmp_path / "r.json"
    report.write_text('{"success": false}')
    _drop(inbox, "d1")
    (first,) = list_new(str(inbox), tmp_path, set())
    moved = set_aside(first, str(inbox), tmp_path, REJECTED, reason="bad ids", report=report)
    assert Path(moved) == inbox / REJECTED / "d1"
    assert (inbox / REJECTED / "d1" / "catalog.parquet").is_file()
    assert (inbox / REJECTED / "d1" / "rejected.txt").read_text() == "bad ids"
    assert (inbox / REJECTED / "d1" / "r.json").is_file()

    _drop(inbox, "d1")  # the same name again: a second folder, the first one untouched
    (again,) = list_new(str(inbox), tmp_path, set())
    second = set_aside(again, str(inbox), tmp_path, REJECTED, reason="still bad")
    assert Path(second).name.startswith("d1.") and Path(second).is_dir()
    assert (inbox / REJECTED / "d1" / "rejected.txt").read_text() == "bad ids"
