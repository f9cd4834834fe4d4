"""Validation history is the drops ingested into this project: never dry runs, one kind at a time.

The issue's bug: validating a small sample (``vsearch validate``) made it history, so the next
full ingest failed ``volume_vs_history``. Here the sample is validated by the real command, and
the big drop must still go in; a real volume jump against ingested drops fails with a message
that says how to accept it, and accepting it works; a small delta is not compared with
snapshots.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.foreign import write_delta, write_snapshot
from vsearch.contracts import read_ledger
from vsearch.data.ingest import ingest_drop
from vsearch.errors import GateFailed
from vsearch.settings import load_settings

pytestmark = pytest.mark.integration

DAY0 = datetime.now(UTC) - timedelta(days=6)


def test_dry_runs_never_feed_history_and_a_jump_says_how_to_accept_it(
    scratch_repo: Path, tmp_path: Path, params_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vsearch.cli import app

    s = load_settings(params_path)
    s.validation.data_docs = False
    params = scratch_repo / "params.yaml"
    params.write_text(yaml.safe_dump(s.model_dump(mode="json")))
    ledger = scratch_repo / "data" / "drops.json"

    sample = tmp_path / "sample"
    write_snapshot(sample, drop_id="sample", products=12, queries=10, start=DAY0)  # 80 rows
    monkeypatch.chdir(scratch_repo)
    out = CliRunner().invoke(app, ["--params", str(params), "validate", str(sample), "--no-docs"])
    assert out.exit_code == 0, out.output
    assert (scratch_repo / "reports" / "validation" / "sample.json").is_file()
    assert read_ledger(ledger) == []  # a dry run is no history

    big = tmp_path / "big"  # 110 queries x 8 = 880 impressions: > 10x the sample
    shop = write_snapshot(big, drop_id="big", queries=110, start=DAY0 + timedelta(days=1))
    ingest_drop(big, s, scratch_repo)
    assert [r["drop_id"] for r in read_ledger(ledger)] == ["big"]

    # A delta (a day of clicks, 80 impressions) is compared with deltas only, never with
    # the 880-impression snapshot.
    delta = tmp_path / "delta"
    write_delta(shop, delta, drop_id="delta", queries=10, start=DAY0 + timedelta(days=2))
    res = ingest_drop(delta, s, scratch_repo)
    assert res.kind == "delta"
    first = sorted(os.listdir(delta / "images"))[0]
    assert os.path.samefile(
        scratch_repo / "data" / "window" / "delta" / "images" / first,
        scratch_repo / "data" / "raw" / "delta" / "images" / first,
    )  # the view links the drop's images, it does not copy them

    small = tmp_path / "small"  # 80 impressions: < 0.1x the ingested snapshot
    write_snapshot(small, drop_id="small", products=12, queries=10, start=DAY0 + timedelta(3))
    with pytest.raises(GateFailed, match="volume_vs_history") as err:
        ingest_drop(small, s, scratch_repo)
    assert "--accept-volume" in str(err.value) and "accept_volume_jump" in str(err.value)
    assert [r["drop_id"] for r in read_ledger(ledger)] == ["big", "delta"]
    ingest_drop(small, s, scratch_repo, accept_volume=True)
    kinds = [(r["drop_id"], r["kind"]) for r in read_ledger(ledger)]
    assert kinds == [("big", "snapshot"), ("delta", "delta"), ("small", "snapshot")]
