"""validate_drop: a valid drop passes; each corruption fails its named check, at its severity.

Critical corruptions must give ``success=False`` with the failing expectation named; quarantine
corruptions must keep ``success=True``, name the check, move the offending rows (and their
cascades) to ``quarantined`` with a reason, and leave a ``clean`` drop that is consistent.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vsearch.contracts import DROP_TABLES, IMPRESSIONS, conform, read_table
from vsearch.errors import BadInput
from vsearch.settings import ValidationSettings
from vsearch.validation import DropStats, ValidationResult, validate_drop
from vsearch.validation import suites as suites_module
from vsearch.validation.suites import CHECKS

pytestmark = pytest.mark.unit

CONTRACTS = {c.name: c for c in DROP_TABLES}


# -- helpers to corrupt a copy of the valid drop ------------------------------------------------


def load(drop: Path, table: str) -> pd.DataFrame:
    return read_table(drop, CONTRACTS[table])


def save(drop: Path, table: str, df: pd.DataFrame) -> None:
    """Write a table as Parquet in contract types (what a correct exporter would write)."""
    pq.write_table(conform(df, CONTRACTS[table]), drop / f"{table}.parquet")


def edit(table: str, fn: Callable[[pd.DataFrame], None]) -> Callable[[Path], None]:
    """A corruption that edits one table in place."""

    def apply(drop: Path) -> None:
        df = load(drop, table)
        fn(df)
        save(drop, table, df)

    return apply


def replace_file(path: Path, data: bytes) -> None:
    path.unlink()  # images may be hard links to the shared valid drop: never write in place
    path.write_bytes(data)


def image_of(drop: Path, table: str, row: int = 0) -> Path:
    return drop / load(drop, table)["image"].iloc[row]


def png(width: int, height: int, noise: bool = False) -> bytes:
    im = (
        Image.effect_noise((width, height), 120).convert("RGB")
        if noise
        else Image.new("RGB", (width, height), (10, 200, 30))
    )
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def first_row(df: pd.DataFrame, mask: pd.Series) -> int:
    return int(df.index[mask][0])


def _dup_event(df: pd.DataFrame) -> None:
    df.loc[1, "event_id"] = df.loc[0, "event_id"]


def _unknown_item(df: pd.DataFrame) -> None:
    df.loc[5, "item_id"] = "no-such-item"


def _unknown_query(df: pd.DataFrame) -> None:
    df.loc[first_row(df, ~df["clicked"]), "query_id"] = "no-such-query"


def _order_on_unclicked(df: pd.DataFrame) -> None:
    df.loc[first_row(df, ~df["clicked"]), "click_order"] = 3


def _future_ts(df: pd.DataFrame) -> None:  # a year after the drop: past any ``now`` used here
    df.loc[0, "ts"] = df["ts"].max() + timedelta(days=365)


def _click_gap(df: pd.DataFrame) -> None:  # query q000 has clicks 0, 1 -> 0, 2
    df.loc[(df["query_id"] == "q000") & (df["click_order"] == 1), "click_order"] = 2


def _click_not_from_0(df: pd.DataFrame) -> None:  # query q001 has one click, order 0 -> 1
    df.loc[(df["query_id"] == "q001") & df["clicked"], "click_order"] = 1


def _dup_position(df: pd.DataFrame) -> None:
    df.loc[3, "position"] = df.loc[2, "position"]


def _no_clicks(df: pd.DataFrame) -> None:
    df["clicked"] = False
    df["click_order"] = None
    df["dwell_ms"] = None


def _missing_column(drop: Path) -> None:
    df = load(drop, "impressions").drop(columns=["clicked"])
    df.to_parquet(drop / "impressions.parquet", index=False)


def _string_position_parquet(drop: Path) -> None:
    table = conform(load(drop, "impressions"), IMPRESSIONS)
    i = table.schema.get_field_index("position")
    as_text = pa.array([str(v) for v in table.column("position").to_pylist()])
    pq.write_table(table.set_column(i, "position", as_text), drop / "impressions.parquet")


def to_csv(drop: Path, corrupt_position: bool = False) -> None:
    """Rewrite every table as CSV (as pyarrow writes it); optionally "abc" in one position."""
    for contract in DROP_TABLES:
        table = conform(load(drop, contract.name), contract)
        if corrupt_position and contract is IMPRESSIONS:
            values = [str(v) for v in table.column("position").to_pylist()]
            values[7] = "abc"
            i = table.schema.get_field_index("position")
            table = table.set_column(i, "position", pa.array(values))
        pacsv.write_csv(table, drop / f"{contract.name}.csv")
        (drop / f"{contract.name}.parquet").unlink()


def _truncate_query_image(drop: Path) -> None:
    path = image_of(drop, "queries")
    data = path.read_bytes()
    replace_file(path, data[: len(data) // 2])


def _missing_image(drop: Path) -> None:
    image_of(drop, "catalog", 3).unlink()


# -- the valid drop -----------------------------------------------------------------------------


def _assert_consistent(result: ValidationResult) -> None:
    """What mining relies on in ``clean``: no dangling ids, intact click_order sequences."""
    assert result.clean is not None
    cat, qry, imp = (result.clean[n] for n in ("catalog", "queries", "impressions"))
    assert imp["item_id"].isin(cat["item_id"]).all()
    assert imp["query_id"].isin(qry["query_id"]).all()
    clicks = imp[imp["clicked"]]
    for _, orders in clicks.groupby("query_id")["click_order"]:
        assert sorted(orders.astype(int)) == list(range(len(orders)))
    for name in ("catalog", "queries", "impressions"):
        total = len(result.clean[name]) + len(result.quarantined[name])
        assert total == result.stats.rows[name]


def test_valid_drop_passes_with_everything_clean(
    valid_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    files_before = sorted(valid_drop.rglob("*"))
    result = validate_drop(valid_drop, vsettings, now=now)
    assert sorted(valid_drop.rglob("*")) == files_before  # validation only reads the drop
    assert result.success, [f.label for f in result.failures]
    assert result.failures == []
    assert result.drop_id == "unit-drop"
    assert result.stats.rows == {"catalog": 30, "queries": 20, "impressions": 200}
    assert result.stats.clicks == 21
    assert result.stats.ctr == pytest.approx(0.105)
    assert result.stats.images == {"referenced": 50, "file_errors": 0, "size_errors": 0}
    assert result.stats.checks_run > 50
    assert all(len(q) == 0 for q in result.quarantined.values())
    _assert_consistent(result)
    assert str(result.clean["impressions"]["ts"].dtype) == "datetime64[us, UTC]"


def test_valid_csv_drop_passes(
    fresh_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    to_csv(fresh_drop)
    result = validate_drop(fresh_drop, vsettings, now=now)
    assert result.success, [f.label for f in result.failures]
    assert len(result.clean["impressions"]) == 200


# -- critical corruptions -----------------------------------------------------------------------

CRITICAL: dict[str, tuple[Callable[[Path], None], str, str, str]] = {
    # name: (corrupt, table, check, expectation type)
    "duplicated event id": (
        edit("impressions", _dup_event),
        "impressions",
        "key_unique",
        "expect_column_values_to_be_unique",
    ),
    "impression for unknown item": (
        edit("impressions", _unknown_item),
        "impressions",
        "item_id_in_catalog",
        "expect_column_values_to_be_in_set",
    ),
    "impression for unknown query": (
        edit("impressions", _unknown_query),
        "impressions",
        "query_id_in_queries",
        "expect_column_values_to_be_in_set",
    ),
    "click_order on unclicked row": (
        edit("impressions", _order_on_unclicked),
        "impressions",
        "click_order_only_if_clicked",
        "expect_column_values_to_be_in_set",
    ),
    "click_order gap": (
        edit("impressions", _click_gap),
        "impressions",
        "click_order_contiguous",
        "expect_column_values_to_be_in_set",
    ),
    "click_order not starting at 0": (
        edit("impressions", _click_not_from_0),
        "impressions",
        "click_order_starts_at_0",
        "expect_column_values_to_be_in_set",
    ),
    "duplicate query position": (
        edit("impressions", _dup_position),
        "impressions",
        "unique_query_position",
        "expect_compound_columns_to_be_unique",
    ),
    "future timestamp": (
        edit("impressions", _future_ts),
        "impressions",
        "not_in_future",
        "expect_column_values_to_be_between",
    ),
    "truncated image file": (
        _truncate_query_image,
        "queries",
        "image_file_ok",
        "expect_column_values_to_be_null",
    ),
    "missing image file": (
        _missing_image,
        "catalog",
        "image_file_ok",
        "expect_column_values_to_be_null",
    ),
    "missing column": (
        _missing_column,
        "impressions",
        "column_exists",
        "expect_column_to_exist",
    ),
    "string-typed position (parquet)": (
        _string_position_parquet,
        "impressions",
        "column_type",
        "expect_column_values_to_be_in_type_list",
    ),
    "string in position (csv)": (
        lambda d: to_csv(d, corrupt_position=True),
        "impressions",
        "column_type",
        "expect_column_values_to_be_in_type_list",
    ),
    "ctr out of bounds": (
        edit("impressions", _no_clicks),
        "impressions",
        "ctr_in_range",
        "expect_column_mean_to_be_between",
    ),
}


@pytest.mark.parametrize("name", list(CRITICAL))
def test_critical_corruption_fails_the_drop_naming_the_expectation(
    name: str, fresh_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    corrupt, table, check, expectation = CRITICAL[name]
    corrupt(fresh_drop)
    result = validate_drop(fresh_drop, vsettings, now=now)
    assert not result.success
    named = [
        f
        for f in result.critical_failures
        if (f.table, f.check, f.expectation_type) == (table, check, expectation)
    ]
    assert named, f"{name}: got {[f.label for f in result.failures]}"
    failure = named[0]
    assert CHECKS[check].critical
    if failure.unexpected_count is not None and check != "ctr_in_range":
        assert failure.unexpected_count >= 1
        assert failure.examples and "_row" in failure.examples[0]


def test_schema_failure_is_reported_without_deeper_checks(
    fresh_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    _string_position_parquet(fresh_drop)
    result = validate_drop(fresh_drop, vsettings, now=now)
    assert result.clean is None
    assert {f.check for f in result.failures} == {"column_type"}
    (failure,) = result.failures
    assert failure.columns == ["position"]
    assert failure.unexpected_count == 200
    assert failure.examples[0]["position"] == "0"


def test_csv_string_position_points_at_the_column(
    fresh_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    to_csv(fresh_drop, corrupt_position=True)
    result = validate_drop(fresh_drop, vsettings, now=now)
    assert [f.label for f in result.failures] == [
        "impressions.position column_type (expect_column_values_to_be_in_type_list)"
    ]
    (failure,) = result.failures
    assert [(e["_row"], e["position"]) for e in failure.examples] == [(7, "abc")]
    assert "stored as string" in failure.message and "1 value(s)" in failure.message


def test_volume_far_below_history_fails(
    valid_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    history = [
        DropStats(
            drop_id=f"d{i}",
            validated_at=f"2026-10-0{i + 1}",
            success=True,
            rows={"impressions": 10_000},
        )
        for i in range(3)
    ]
    result = validate_drop(valid_drop, vsettings, history=history, now=now)
    assert not result.success
    (failure,) = result.failures
    assert (failure.check, failure.expectation_type) == (
        "volume_vs_history",
        "expect_table_row_count_to_be_between",
    )
    assert failure.observed == 200
    in_range = [DropStats(drop_id="d", validated_at="x", success=True, rows={"impressions": 250})]
    assert validate_drop(valid_drop, vsettings, history=in_range, now=now).success


def test_missing_table_and_missing_folder(
    fresh_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    (fresh_drop / "queries.parquet").unlink()
    result = validate_drop(fresh_drop, vsettings, now=now)
    assert not result.success and result.clean is None
    assert [(f.table, f.check) for f in result.failures] == [("queries", "table_readable")]
    with pytest.raises(BadInput, match="drop folder not found"):
        validate_drop(fresh_drop / "nope", vsettings, now=now)


# -- quarantine corruptions ---------------------------------------------------------------------


def _before_listing(drop: Path) -> None:
    """Item i000 listed 20 days after the last listing: weeks after it was shown, before now."""
    cat = load(drop, "catalog")
    cat.loc[cat["item_id"] == "i000", "listed_at"] = cat["listed_at"].max() + timedelta(days=20)
    save(drop, "catalog", cat)


def _oversize_bytes(drop: Path) -> None:
    replace_file(image_of(drop, "catalog", 2), png(120, 80, noise=True))


def _oversize_pixels(drop: Path) -> None:
    replace_file(image_of(drop, "catalog", 2), png(400, 400))


def _bad_values(df: pd.DataFrame) -> None:
    df.loc[4, "price"] = 0.0
    df.loc[5, "quality"] = 1.5
    df.loc[6, "title"] = "  "
    df.loc[7, "sales"] = -2


def _negative_stock(df: pd.DataFrame) -> None:
    df["stock"] = pd.array([3] * len(df), dtype="Int64")
    df.loc[2, "stock"] = pd.NA  # unknown: fine
    df.loc[4, "stock"] = -1


def _negative_dwell(df: pd.DataFrame) -> None:
    df.loc[first_row(df, ~df["clicked"]), "dwell_ms"] = -5


QUARANTINE: dict[str, tuple[Callable[[Path], None], str, set[str]]] = {
    # name: (corrupt, table of the direct failure, checks expected to fail)
    "impression before listing": (_before_listing, "impressions", {"shown_after_listing"}),
    "image over max bytes": (_oversize_bytes, "catalog", {"image_size_ok"}),
    "image over max pixels": (_oversize_pixels, "catalog", {"image_size_ok"}),
    "bad catalog values": (
        edit("catalog", _bad_values),
        "catalog",
        {"price_positive", "quality_in_unit_range", "title_not_blank", "sales_non_negative"},
    ),
    "negative dwell": (edit("impressions", _negative_dwell), "impressions", {"dwell_non_negative"}),
    "negative stock": (edit("catalog", _negative_stock), "catalog", {"stock_non_negative"}),
}


@pytest.mark.parametrize("name", list(QUARANTINE))
def test_row_level_problem_is_quarantined_and_the_rest_is_clean(
    name: str, fresh_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    corrupt, table, checks = QUARANTINE[name]
    corrupt(fresh_drop)
    result = validate_drop(fresh_drop, vsettings, now=now)
    assert result.success, [f.label for f in result.critical_failures]
    failed = {f.check for f in result.failures}
    assert failed == checks
    assert not any(f.critical for f in result.failures)
    q = result.quarantined[table]
    assert len(q) >= 1
    for check in checks:
        assert q["reason"].str.contains(re.escape(check)).any()
    _assert_consistent(result)


def test_quarantined_catalog_item_cascades_to_its_impressions_and_their_clicked_lists(
    fresh_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    # i001 is the first click (order 0) of q000, and shown but not clicked in q004
    replace_file(image_of(fresh_drop, "catalog", 1), png(400, 400))
    result = validate_drop(fresh_drop, vsettings, now=now)
    assert result.success
    assert list(result.quarantined["catalog"]["item_id"]) == ["i001"]
    imp_q = result.quarantined["impressions"].set_index("event_id")["reason"]
    assert imp_q["e000-1"] == "cascade:item(image_size_ok)"  # the clicked row itself...
    assert imp_q["e000-4"] == "cascade:click(cascade:item)"  # ...takes its list's other click
    assert imp_q["e004-3"] == "cascade:item(image_size_ok)"  # an unclicked showing goes alone
    clean_queries = set(result.clean["impressions"]["query_id"])
    assert "q000" not in clean_queries and "q004" in clean_queries
    assert len(result.clean["impressions"].query("query_id == 'q004'")) == 9
    assert result.stats.quarantined_rows == {
        "catalog": 1,
        "queries": 0,
        "impressions": len(imp_q),
    }
    _assert_consistent(result)


def test_severity_table_in_docstring_matches_the_checks() -> None:
    """The module docstring's table is the documentation: it must list every check truthfully."""
    doc = suites_module.__doc__ or ""
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| (critical|quarantine) \|", doc, flags=re.M)
    assert {name: sev == "critical" for name, sev in rows} == {
        name: spec.critical for name, spec in CHECKS.items()
    }


# -- odd inputs: reported as failures, never raised ---------------------------------------------


def _pandas_edit(table: str, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    """Edit through a pandas round trip, as a person fixing a drop by hand would."""

    def apply(drop: Path) -> None:
        path = drop / f"{table}.parquet"
        fn(pd.read_parquet(path)).to_parquet(path, index=False)

    return apply


def _all_empty(drop: Path) -> None:
    for table in CONTRACTS:
        _pandas_edit(table, lambda df: df.iloc[:0])(drop)


ODD: dict[str, tuple[Callable[[Path], None], str, str, list[str], bool]] = {
    # name: (corrupt, table, check, columns, critical)
    "all tables empty": (_all_empty, "impressions", "min_rows", [], True),
    "fractional position": (
        _pandas_edit("impressions", lambda df: df.assign(position=df["position"] + 0.5)),
        "impressions",
        "contract_cast",
        ["position"],
        True,
    ),
    "garbage table file": (
        lambda d: (d / "catalog.parquet").write_bytes(b"not parquet"),
        "catalog",
        "table_readable",
        [],
        True,
    ),
    "image path outside the drop": (
        _pandas_edit("catalog", lambda df: df.assign(image=["../../etc/passwd"] * len(df))),
        "catalog",
        "image_path_safe",
        ["image_path_error"],
        True,
    ),
    "null query timestamp": (
        _pandas_edit("queries", lambda df: df.assign(ts=df["ts"].where(df.index != 4, None))),
        "queries",
        "value_not_null",
        ["ts"],
        False,
    ),
}


@pytest.mark.parametrize("name", list(ODD))
def test_odd_inputs_are_reported_not_raised(
    name: str, fresh_drop: Path, vsettings: ValidationSettings, now: datetime
) -> None:
    corrupt, table, check, columns, critical = ODD[name]
    corrupt(fresh_drop)
    result = validate_drop(fresh_drop, vsettings, now=now)
    assert result.success is not critical
    assert (table, check, columns, critical) in [
        (f.table, f.check, f.columns, f.critical) for f in result.failures
    ]
    json.dumps(result.to_dict(), allow_nan=False)  # the report is valid JSON whatever happened
    if not critical:  # the query leaves, and so do its impressions
        reasons = set(result.quarantined["impressions"]["reason"])
        assert reasons == {"cascade:query(value_not_null)"}
        _assert_consistent(result)
