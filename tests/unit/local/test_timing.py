"""The per-stage timing table: rows from timed blocks (also when they raise), ran/skipped, total."""

from __future__ import annotations

import pytest

from vsearch.local.timing import row, timed, timing_markdown, timing_text, total_seconds

pytestmark = pytest.mark.unit


def test_timed_appends_a_row_even_when_the_block_raises() -> None:
    rows: list[dict] = []
    with timed(rows, "train") as entry:
        entry["ran"] = False
    with pytest.raises(RuntimeError), timed(rows, "evaluate"):
        raise RuntimeError("boom")
    assert [(r["stage"], r["ran"]) for r in rows] == [("train", False), ("evaluate", True)]
    assert all(r["seconds"] >= 0 for r in rows)


def test_tables_show_each_stage_state_seconds_and_total() -> None:
    rows = [row("world", True, 61.04), row("train", False, 2.26), row("promotion", True, 50)]
    assert total_seconds(rows) == pytest.approx(113.3)
    md = timing_markdown(rows)
    assert md.splitlines()[0] == "| stage | ran/skipped | seconds |"
    assert "| world | ran | 61.0 |" in md and "| train | skipped | 2.3 |" in md
    assert "**113.3**" in md
    text = timing_text(rows).splitlines()
    assert text[1].split() == ["world", "ran", "61.0"]
    assert text[2].split() == ["train", "skipped", "2.3"]
    assert text[-1].split() == ["total", "113.3"]


def test_the_nightly_artifact_ends_with_the_timing_table() -> None:
    from flows.nightly import _summary
    from vsearch.settings import Settings

    rows = [row("ingest", True, 40.0), row("train", True, 520.0), row("promotion", False, 3.0)]
    md = _summary(Settings(), [{"drop_id": "d1"}], [], {}, True, rows)
    assert "## Time per stage" in md
    assert "| train | ran | 520.0 |" in md and "| promotion | skipped | 3.0 |" in md
    assert "## Time per stage" not in _summary(Settings(), [], [], {}, False)
