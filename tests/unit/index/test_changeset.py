"""The project's change set: durable upserts (with photos) and deletes, latest change wins,
read back by another connection (another process's view), and refs that tell a release which
changes its log already holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from vsearch.errors import BadInput
from vsearch.index.builder import build_release
from vsearch.index.changeset import CHANGESET_FILE, ChangeSet
from vsearch.index.engine import Engine

pytestmark = pytest.mark.unit


def _row(item: str, title: str = "t") -> dict:
    return {"item_id": item, "category": "a", "title": title, "price": 2.0}


def test_latest_change_of_each_item_wins_and_survives_reopening(tmp_path: Path) -> None:
    cs = ChangeSet.in_folder(tmp_path / "admin")
    assert cs.last_seq() == 0 and cs.latest() == [] and not cs.exists()  # reads create nothing
    s1, stored = cs.record_upsert(_row("x", "first"), b"photo-1", "JPEG", [0.1, 0.1, 0.9, 0.9])
    assert stored["image"].startswith("admin/") and stored["listed_at"]
    s2, _ = cs.record_upsert(_row("y"), b"photo-y", "PNG")
    s3, _ = cs.record_upsert(_row("x", "second"), b"photo-2", "JPEG")
    s4 = cs.record_delete("y")
    assert (s1, s2, s3, s4) == (1, 2, 3, 4)
    cs.close()

    again = ChangeSet(tmp_path / "admin" / CHANGESET_FILE)  # a fresh connection
    latest = again.latest()
    assert [(c.item_id, c.op, c.seq) for c in latest] == [("x", "upsert", 3), ("y", "delete", 4)]
    x = latest[0]
    assert x.fields["title"] == "second" and x.photo == b"photo-2" and x.box is None
    assert [c.item_id for c in again.latest(after=3)] == ["y"]  # already folded: left out
    assert [(c.item_id, c.seq) for c in again.latest(upto=2)] == [("x", 1), ("y", 2)]
    assert again.latest(upto=1)[0].box == pytest.approx((0.1, 0.1, 0.9, 0.9))
    assert again.rows()["item_id"].tolist() == ["x"]
    assert again.counts() == {"upsert": 3, "delete": 1, "last_seq": 4}
    assert again.photo(x.fields["image"].removeprefix("admin/"))[0] == b"photo-2"
    with pytest.raises(BadInput):
        again.photo("../changes.sqlite")
    with pytest.raises(BadInput):
        again.photo("nope.jpg")


def test_wal_mode_and_a_change_needs_its_photo(tmp_path: Path) -> None:
    cs = ChangeSet.in_folder(tmp_path)
    with pytest.raises(BadInput, match="photo"):
        cs.record_upsert(_row("x"), b"", "JPEG")
    with pytest.raises(BadInput, match="item_id"):
        cs.record_upsert({"category": "a"}, b"p", "JPEG")
    cs.record_delete("gone")
    con = sqlite3.connect(tmp_path / CHANGESET_FILE)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(sqlite3.IntegrityError):  # the schema itself refuses a photo-less upsert
        con.execute("INSERT INTO changes (op, item_id, at) VALUES ('upsert', 'z', 'now')")
    con.close()


def test_release_log_remembers_which_changes_it_holds(tmp_path: Path, tiny, index_settings) -> None:
    build_release(tiny(n=8, prefix="b"), index_settings.model_copy(update={"bits": 16}), tmp_path)
    extra = tiny(n=2, prefix="new", seed=3)
    with Engine.open_current(tmp_path) as engine:
        assert engine.changeset_seq == 0
        engine.upsert(extra, ref=5)
        engine.upsert(tiny(n=1, prefix="cli", seed=4))  # a write not from the change set
        engine.delete(np.asarray(["b0"], dtype=object), ref=7)
        assert engine.changeset_seq == 7
    with Engine.open_current(tmp_path, writable=False) as engine:  # replayed from the log
        assert engine.changeset_seq == 7
        assert engine.lookup(["new0", "b0", "cli0"]).tolist()[1] == -1
