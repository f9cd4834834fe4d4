"""The held-out split: the newest queries by time (ties by query id), or a hash of the id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vsearch.contracts import QUERIES, write_table
from vsearch.settings import SplitSettings
from vsearch.split import (
    held_out_ids,
    heldout_queries,
    holdout_mask,
    is_held_out,
    validation_mask,
)

pytestmark = pytest.mark.unit

T0 = pd.Timestamp("2026-10-01", tz="UTC")


def _queries(ts_minutes: list[int], ids: list[str] | None = None) -> pd.DataFrame:
    ids = ids or [f"q{i:02d}" for i in range(len(ts_minutes))]
    return pd.DataFrame({"query_id": ids, "ts": [T0 + pd.Timedelta(minutes=m) for m in ts_minutes]})


def test_time_split_holds_out_the_newest_share() -> None:
    q = _queries([5, 1, 9, 3, 7, 2, 8, 4, 6, 0])  # q02 (9) and q06 (8) are the newest
    split = SplitSettings(method="time", eval_share=0.2)
    assert held_out_ids(q, split) == {"q02", "q06"}
    shuffled = q.sample(frac=1.0, random_state=3)
    assert held_out_ids(shuffled, split) == {"q02", "q06"}  # row order does not matter
    mask = is_held_out(q, split)
    assert mask.dtype == bool and mask.sum() == 2
    assert q["ts"][mask].min() > q["ts"][~mask].max()  # everything held out is newer
    assert not is_held_out(q, SplitSettings(eval_share=0.0)).any()


def test_time_split_breaks_ties_by_query_id() -> None:
    q = _queries([0, 0, 5, 5, 5], ids=["a", "b", "e", "c", "d"])
    # three queries share the newest ts; of those the largest ids are the newest
    assert held_out_ids(q, SplitSettings(eval_share=0.4)) == {"d", "e"}
    assert held_out_ids(q.iloc[::-1], SplitSettings(eval_share=0.4)) == {"d", "e"}


def test_time_split_needs_timestamps_and_a_share_below_one() -> None:
    with pytest.raises(ValueError, match="ts"):
        is_held_out(pd.DataFrame({"query_id": ["a"]}), SplitSettings())
    with pytest.raises(ValueError):
        SplitSettings(eval_share=1.0)


def test_hash_split_stays_available_without_timestamps() -> None:
    q = pd.DataFrame({"query_id": [f"q-{i:05d}" for i in range(2000)]})
    mask = is_held_out(q, SplitSettings(method="hash", eval_share=0.2))
    assert 0.17 < mask.mean() < 0.23
    assert np.array_equal(mask, is_held_out(q.iloc[::-1], SplitSettings(method="hash"))[::-1])


def test_heldout_queries_of_a_drop_are_the_newest(tmp_path: Path) -> None:
    q = _queries(list(range(10))).assign(
        image=[f"images/q{i}.jpg" for i in range(10)],
        user_id="u",
        session_id="s",
        predicted_category="c",
    )
    write_table(q, QUERIES, tmp_path)
    held = heldout_queries(tmp_path, SplitSettings(eval_share=0.3))
    assert list(held["query_id"]) == ["q07", "q08", "q09"]
    assert list(heldout_queries(tmp_path, SplitSettings(eval_share=0.3), 2)["query_id"]) == [
        "q07",
        "q08",
    ]


def test_validation_split_is_a_hash_of_the_id_and_the_seed() -> None:
    ids = [f"q-{i:05d}" for i in range(4000)]
    mask = validation_mask(ids, 0.1, seed=7)
    assert mask.dtype == bool and 0.08 < mask.mean() < 0.12
    # the same ids give the same answer in any order or company: the evaluation recomputes it
    assert np.array_equal(validation_mask(ids[::-1], 0.1, seed=7)[::-1], mask)
    assert np.array_equal(validation_mask(ids[:100], 0.1, seed=7), mask[:100])
    other = validation_mask(ids, 0.1, seed=8)
    assert 0 < (other & mask).sum() < mask.sum()  # another seed, another draw
    # not the held-out hash: with the same share it picks other queries
    held = holdout_mask(ids, 0.1, salt="holdout", buckets=10_000)
    assert (held & mask).sum() < mask.sum() / 2
    assert not validation_mask(ids, 0.0, seed=7).any()
