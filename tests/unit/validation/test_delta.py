"""Delta drops: what they may leave out, what they must get right, and whose history counts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from vsearch.contracts import CATALOG, REMOVED, read_table, write_table
from vsearch.errors import BadInput
from vsearch.settings import ValidationSettings
from vsearch.validation import validate_drop
from vsearch.validation.report import DropStats, history_from_ledger

pytestmark = pytest.mark.unit


def _make_delta(drop: Path, keep_items: int) -> pd.DataFrame:
    """Turn the valid drop into a delta whose catalog holds ``keep_items`` listings only."""
    catalog = read_table(drop, CATALOG)
    write_table(catalog.head(keep_items), CATALOG, drop)
    manifest = json.loads((drop / "drop.json").read_text())
    (drop / "drop.json").write_text(json.dumps({**manifest, "kind": "delta"}))
    return catalog


def test_delta_impressions_may_show_listings_the_project_already_has(
    fresh_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    catalog = _make_delta(fresh_drop, keep_items=2)
    alone = validate_drop(fresh_drop, vsettings, now=now)
    assert not alone.success
    assert "item_id_in_catalog" in {f.check for f in alone.critical_failures}
    known = validate_drop(fresh_drop, vsettings, now=now, known_catalog=catalog)
    assert known.success, [f.label for f in known.critical_failures]
    assert known.stats.kind == "delta"  # a 2-row catalog is fine for a delta (no min_rows)


def test_removed_table_is_checked_and_kept(
    fresh_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    catalog = _make_delta(fresh_drop, keep_items=30)
    write_table(pd.DataFrame({"item_id": ["i001", "i001"]}), REMOVED, fresh_drop)
    dup = validate_drop(fresh_drop, vsettings, now=now, known_catalog=catalog)
    assert [f.label for f in dup.critical_failures] == ["removed.item_id key_unique (no batch)"]
    write_table(pd.DataFrame({"item_id": ["i001", "i002"]}), REMOVED, fresh_drop)
    ok = validate_drop(fresh_drop, vsettings, now=now, known_catalog=catalog)
    assert ok.success and list(ok.clean["removed"]["item_id"]) == ["i001", "i002"]


def test_a_snapshot_with_a_removed_table_or_an_unknown_kind_fails(
    fresh_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    write_table(pd.DataFrame({"item_id": ["i001"]}), REMOVED, fresh_drop)
    result = validate_drop(fresh_drop, vsettings, now=now)
    assert not result.success
    assert "kind" in result.critical_failures[0].message
    (fresh_drop / "drop.json").write_text(json.dumps({"kind": "partial"}))
    with pytest.raises(BadInput, match="snapshot, delta"):
        validate_drop(fresh_drop, vsettings, now=now)


def test_volume_jump_can_be_accepted(
    valid_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    big = [DropStats(drop_id="d", validated_at="x", success=True, rows={"impressions": 10_000})]
    assert not validate_drop(valid_drop, vsettings, history=big, now=now).success
    assert validate_drop(valid_drop, vsettings, history=big, now=now, accept_volume=True).success


def test_history_is_ingested_drops_of_one_kind() -> None:
    ledger = [
        {
            "drop_id": "s1",
            "kind": "snapshot",
            "stats": {"drop_id": "s1", "validated_at": "1", "success": True, "rows": {"a": 1}},
        },
        {
            "drop_id": "d1",
            "kind": "delta",
            "stats": {"drop_id": "d1", "validated_at": "2", "success": True},
        },
        {"drop_id": "old", "stats": {"drop_id": "old", "validated_at": "0", "success": True}},
        {"drop_id": "nostats", "kind": "snapshot"},
    ]
    snaps = history_from_ledger(ledger, kind="snapshot")
    assert [s.drop_id for s in snaps] == ["old", "s1"]  # no kind: a snapshot (the default)
    assert [s.drop_id for s in history_from_ledger(ledger, kind="delta")] == ["d1"]
    assert history_from_ledger(ledger, kind="snapshot", exclude="s1")[0].drop_id == "old"
