"""Change log: records round-trip, torn tails are dropped, damage is refused, sharing works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsearch.index.upsert_log import ChangeLog, LogCorrupt

pytestmark = pytest.mark.unit


def _upsert(log: ChangeLog, tiny, n: int = 3, prefix: str = "u") -> None:
    emb = tiny(n=n, prefix=prefix)
    with log.locked():
        log.read_new(repair=True)
        log.append_upsert(emb.item_ids, emb.categories, emb.codes, emb.vectors)


def test_records_roundtrip(tmp_path: Path, tiny) -> None:
    path = tmp_path / "changes.log"
    emb = tiny(n=4, bits=24, dim=5)
    with ChangeLog(path) as log, log.locked():
        log.read_new(repair=True)
        log.append_upsert(emb.item_ids, emb.categories, emb.codes, emb.vectors)
        log.append_delete(np.asarray(["x1", "x3"], dtype=object))
        log.append_marker("seal", "v0002")
    with ChangeLog(path) as log:
        up, dele, seal = log.read_new()
    assert (up.seq, dele.seq, seal.seq) == (1, 2, 3)
    assert up.op == "upsert" and up.item_ids.tolist() == emb.item_ids.tolist()
    np.testing.assert_array_equal(up.codes, emb.codes)
    np.testing.assert_array_equal(up.vectors, emb.vectors)
    assert dele.op == "delete" and dele.item_ids.tolist() == ["x1", "x3"]
    assert seal.op == "seal" and seal.target == "v0002"


def test_torn_tail_is_dropped_and_repaired(tmp_path: Path, tiny) -> None:
    path = tmp_path / "changes.log"
    with ChangeLog(path) as log:
        _upsert(log, tiny)
        _upsert(log, tiny, prefix="v")
    good = path.stat().st_size
    whole = path.read_bytes()
    path.write_bytes(whole[: good - 7])  # the second record torn by a crash mid-write
    with ChangeLog(path) as log:
        assert [c.seq for c in log.read_new()] == [1]  # reader: ignores the torn tail
        with log.locked():
            log.read_new(repair=True)  # writer: truncates it before appending
        assert path.stat().st_size < good - 7
        _upsert(log, tiny, prefix="w")
    with ChangeLog(path) as log:
        changes = log.read_new()
    assert [c.seq for c in changes] == [1, 2]
    assert changes[1].item_ids[0] == "w0"


def test_damage_before_the_tail_is_refused(tmp_path: Path, tiny) -> None:
    path = tmp_path / "changes.log"
    with ChangeLog(path) as log:
        _upsert(log, tiny)
        _upsert(log, tiny, prefix="v")
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF  # inside the first record's payload
    path.write_bytes(bytes(data))
    with ChangeLog(path) as log, pytest.raises(LogCorrupt, match="damaged"):
        log.read_new()


def test_two_handles_see_each_other(tmp_path: Path, tiny) -> None:
    path = tmp_path / "changes.log"
    a, b = ChangeLog(path), ChangeLog(path)
    try:
        _upsert(a, tiny)
        assert b.has_new() and [c.seq for c in b.read_new()] == [1]
        _upsert(b, tiny, prefix="b")  # b continues the sequence
        assert [c.seq for c in a.read_new()] == [2] and not a.has_new()
    finally:
        a.close()
        b.close()
