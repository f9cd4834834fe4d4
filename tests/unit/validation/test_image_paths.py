"""Image paths in a drop's tables never lead out of the drop: absolute paths, ``..`` parts and
symlinks to the outside are a critical, named failure (``image_path_safe``), the file behind
them is never opened, and ingest refuses to stage them even without validation."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from vsearch.contracts import unsafe_image_path
from vsearch.errors import BadInput
from vsearch.settings import ValidationSettings
from vsearch.validation import validate_drop

pytestmark = pytest.mark.unit


class OpenedWatch:
    """A FIFO outside the drop that notices being opened for reading: a writer polls
    ``open(O_WRONLY | O_NONBLOCK)``, which succeeds only while a reader has it open (and then
    closes at once, so that reader gets EOF instead of hanging)."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path, self.opened, self._stop = path, False, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader
                time.sleep(0.01)
                continue
            self.opened = True
            os.close(fd)

    def stop(self) -> bool:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.opened


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[OpenedWatch]:
    watch = OpenedWatch(tmp_path / "secret.jpg")
    yield watch
    watch.stop()


def _point_first_image(drop: Path, table: str, value: str) -> None:
    path = drop / f"{table}.parquet"
    df = pd.read_parquet(path)
    df.loc[0, "image"] = value
    df.to_parquet(path, index=False)


def _symlink_out(drop: Path, target: Path) -> str:
    (drop / "images" / "evil.jpg").symlink_to(target)
    return "images/evil.jpg"


def _symlinked_folder(drop: Path, target: Path) -> str:
    (drop / "images" / "shared").symlink_to(target.parent, target_is_directory=True)
    return f"images/shared/{target.name}"


CASES = {
    "absolute path": lambda drop, target: str(target),
    "dot-dot path": lambda drop, target: os.path.relpath(target, drop),
    "dot-dot that comes back in": lambda drop, target: "images/../images/x.jpg",
    "symlink to a file outside": _symlink_out,
    "symlinked folder leading outside": _symlinked_folder,
}


@pytest.mark.parametrize("table", ["catalog", "queries"])
@pytest.mark.parametrize("name", list(CASES))
def test_unsafe_image_paths_are_a_critical_named_failure_and_never_read(
    name: str,
    table: str,
    fresh_drop: Path,
    vsettings: ValidationSettings,
    now: datetime,
    outside: OpenedWatch,
) -> None:
    rel = CASES[name](fresh_drop, outside.path)
    _point_first_image(fresh_drop, table, rel)
    result = validate_drop(fresh_drop, vsettings, now=now)
    assert not result.success
    named = [f for f in result.failures if f.check == "image_path_safe"]
    assert named and named[0].critical and named[0].table == table
    assert named[0].columns == ["image_path_error"]
    assert outside.stop() is False  # the file outside the drop was never opened


def test_safe_paths_and_symlinks_inside_the_drop_pass(fresh_drop: Path) -> None:
    first = sorted((fresh_drop / "images").rglob("*.*"))[0]
    (fresh_drop / "images" / "alias.jpg").symlink_to(first)
    assert unsafe_image_path(fresh_drop, str(first.relative_to(fresh_drop))) is None
    assert unsafe_image_path(fresh_drop, "images/alias.jpg") is None
    assert unsafe_image_path(fresh_drop, "images/a\\\\..\\\\b.jpg") is not None
    assert unsafe_image_path(fresh_drop, "images/a\\x00.jpg") is not None


def test_ingest_staging_refuses_an_unsafe_path_without_validation(
    fresh_drop: Path, tmp_path: Path, outside: OpenedWatch
) -> None:
    """Defence in depth: the staging step itself never copies from outside the drop."""
    from vsearch.contracts import DROP_TABLES, read_table
    from vsearch.data.ingest import stage_drop

    clean = {c.name: read_table(fresh_drop, c) for c in DROP_TABLES}
    clean["catalog"].loc[0, "image"] = _symlink_out(fresh_drop, outside.path)
    raw = tmp_path / "raw"
    with pytest.raises(BadInput, match="image_path_safe"):
        stage_drop(fresh_drop, "d1", clean, raw, {"drop_id": "d1"})
    assert not (raw / "d1").exists() and not any(raw.glob(".*staging"))
    assert outside.stop() is False


def test_the_window_refuses_a_tampered_raw_drop(
    fresh_drop: Path, tmp_path: Path, outside: OpenedWatch
) -> None:
    """A raw drop changed after ingest (a symlink out of it): the merged view is not built and
    nothing outside is read."""
    import shutil

    from vsearch.contracts import SNAPSHOT
    from vsearch.data.window import WindowDrop, build_view

    raw = tmp_path / "raw"
    drop = raw / "d1"
    shutil.copytree(fresh_drop, drop, symlinks=True)
    _point_first_image(drop, "catalog", _symlink_out(drop, outside.path))
    out = tmp_path / "window"
    with pytest.raises(BadInput, match="window: image path 'd1/images/evil.jpg' refused"):
        build_view([WindowDrop("d1", SNAPSHOT, None, True)], raw, out)
    assert not out.exists() and outside.stop() is False
