"""Contracts: frames are cast to the schema, missing/uncastable columns are named, CSV works."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from vsearch.contracts import (
    CATALOG,
    DROP_TABLES,
    IMPRESSIONS,
    ContractError,
    conform,
    read_drop_manifest,
    read_raw,
    read_table,
    table_path,
    write_table,
)

pytestmark = pytest.mark.unit


def _impressions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": ["e1", "e2"],
            "query_id": ["q1", "q1"],
            "session_id": ["s1", "s1"],
            "item_id": ["i1", "i2"],
            "position": [0, 1],
            "clicked": [True, False],
            "click_order": [0, None],
            "ts": pd.to_datetime(["2026-10-01T00:00:00Z", "2026-10-01T00:00:01Z"]),
        }
    )


def test_conform_orders_columns_and_types() -> None:
    df = _impressions()[::-1].reset_index(drop=True)
    df["extra"] = 1
    table = conform(df, IMPRESSIONS)
    assert table.column_names == [n for n in IMPRESSIONS.names if n != "dwell_ms"]
    assert table.schema.field("position").type == pa.int64()
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("click_order").null_count == 1


def test_missing_required_column_is_named() -> None:
    with pytest.raises(
        ContractError, match=r"impressions: missing required column\(s\) \['clicked'\]"
    ):
        conform(_impressions().drop(columns=["clicked"]), IMPRESSIONS)


def test_uncastable_column_is_named() -> None:
    df = _impressions()
    df["position"] = ["zero", "one"]
    with pytest.raises(ContractError, match=r"impressions\.position"):
        conform(df, IMPRESSIONS)


def test_parquet_round_trip(tmp_path: Path) -> None:
    write_table(_impressions(), IMPRESSIONS, tmp_path)
    back = read_table(tmp_path, IMPRESSIONS)
    assert list(back["event_id"]) == ["e1", "e2"]
    assert back["click_order"].isna().tolist() == [False, True]


def test_csv_is_read_as_found(tmp_path: Path) -> None:
    df = _impressions()
    df["position"] = ["0", "abc"]
    df.to_csv(tmp_path / "impressions.csv", index=False)
    assert table_path(tmp_path, IMPRESSIONS).suffix == ".csv"
    raw = read_raw(tmp_path, IMPRESSIONS)
    assert raw["position"].tolist() == ["0", "abc"]  # not coerced: validation must see it
    with pytest.raises(ContractError, match="position"):
        read_table(tmp_path, IMPRESSIONS)


def test_missing_table_names_the_drop_layout(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="catalog.parquet or catalog.csv"):
        table_path(tmp_path, CATALOG)


def test_manifest_optional_and_checked(tmp_path: Path) -> None:
    assert read_drop_manifest(tmp_path) == {}
    (tmp_path / "drop.json").write_text("{broken")
    with pytest.raises(ContractError, match="drop.json"):
        read_drop_manifest(tmp_path)


def test_every_drop_table_has_a_unique_key() -> None:
    for contract in DROP_TABLES:
        assert contract.key in contract.names
        assert len(set(contract.names)) == len(contract.names)
        assert contract.empty().columns.tolist() == contract.names


def test_docs_match_contracts() -> None:
    from vsearch.contracts import contracts_markdown

    docs = Path(__file__).resolve().parents[2] / "docs" / "data_contracts.md"
    assert contracts_markdown() in docs.read_text(), "regenerate docs/data_contracts.md tables"
