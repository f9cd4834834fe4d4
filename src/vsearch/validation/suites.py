"""The Great Expectations suites that guard a drop, and the severity of every check.

Every check is a GX expectation (so it appears in the JSON report *and* in Data Docs) except the
two marked "no batch", which run before GX has a table to look at. Row-level relations that GX
cannot express (foreign keys over large id sets, per-query click sequences, image decoding) are
computed in pandas as per-row columns (:mod:`vsearch.validation.derived`) and then asserted by a
plain GX expectation on that column. Each expectation carries ``meta.check`` (the stable name
used in reports and quarantine reasons), ``severity`` and, in ``notes``, why it exists
(:data:`CHECKS` holds the reasons).

**critical** failures make the drop fail (``success=False``: nothing downstream runs).
**quarantine** failures move the offending rows to ``quarantined`` with the check name as
``reason``; the rest of the drop proceeds. Rationale: a critical failure means the *drop* cannot
be trusted (broken exporter, incomplete copy, broken logger, clock, or a wrong-sized extract); a
quarantine failure means one *row* is unusable while its neighbours are fine.

| check | tables | severity | GX expectation (on a derived column where needed) |
| --- | --- | --- | --- |
| `table_readable` | all | critical | no batch |
| `column_exists` | all | critical | ExpectColumnToExist |
| `column_type` | all | critical | ExpectColumnValuesToBeInTypeList |
| `contract_cast` | all | critical | no batch |
| `min_rows` | all | critical | ExpectTableRowCountToBeBetween |
| `volume_vs_history` | impressions | critical | ExpectTableRowCountToBeBetween |
| `ctr_in_range` | impressions | critical | ExpectColumnMeanToBeBetween |
| `key_not_null` | all | critical | ExpectColumnValuesToNotBeNull |
| `key_unique` | all | critical | ExpectColumnValuesToBeUnique |
| `required_not_null` | impressions | critical | ExpectColumnValuesToNotBeNull |
| `not_in_future` | all | critical | ExpectColumnValuesToBeBetween |
| `position_range` | impressions | critical | ExpectColumnValuesToBeBetween |
| `unique_query_position` | impressions | critical | ExpectCompoundColumnsToBeUnique |
| `item_id_in_catalog` | impressions | critical | ExpectColumnValuesToBeInSet |
| `query_id_in_queries` | impressions | critical | ExpectColumnValuesToBeInSet |
| `click_order_only_if_clicked` | impressions | critical | ExpectColumnValuesToBeInSet |
| `click_order_starts_at_0` | impressions | critical | ExpectColumnValuesToBeInSet |
| `click_order_contiguous` | impressions | critical | ExpectColumnValuesToBeInSet |
| `image_path_safe` | catalog, queries | critical | ExpectColumnValuesToBeNull |
| `image_file_ok` | catalog, queries | critical | ExpectColumnValuesToBeNull |
| `value_not_null` | all | quarantine | ExpectColumnValuesToNotBeNull |
| `image_size_ok` | catalog, queries | quarantine | ExpectColumnValuesToBeNull |
| `price_positive` | catalog | quarantine | ExpectColumnValuesToBeBetween |
| `quality_in_unit_range` | catalog | quarantine | ExpectColumnValuesToBeBetween |
| `sales_non_negative` | catalog | quarantine | ExpectColumnValuesToBeBetween |
| `stock_non_negative` | catalog (`stock` given) | quarantine | ExpectColumnValuesToBeBetween |
| `title_not_blank` | catalog | quarantine | ExpectColumnValuesToNotMatchRegex |
| `dwell_non_negative` | impressions | quarantine | ExpectColumnValuesToBeBetween |
| `shown_after_listing` | impressions | quarantine | ExpectColumnPairValuesAToBeGreaterThanB |
| `shown_after_query` | impressions | quarantine | ExpectColumnPairValuesAToBeGreaterThanB |

Quarantine cascades so that ``clean`` stays consistent: impressions of a quarantined catalog
item or query go too (``cascade:item(...)``, ``cascade:query(...)``), and when a *clicked*
impression is quarantined the rest of its query's list goes with it (``cascade:click(...)``),
because a list with a missing click has a broken ``click_order`` sequence.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from vsearch.contracts import CATALOG, IMPRESSIONS, QUERIES, TableContract
from vsearch.settings import ValidationSettings
from vsearch.validation.derived import (
    CLICK_ORDER_CONTIGUOUS,
    CLICK_ORDER_ONLY_IF_CLICKED,
    CLICK_ORDER_STARTS_AT_0,
    IMAGE_FILE_ERROR,
    IMAGE_PATH_ERROR,
    IMAGE_SIZE_ERROR,
    ITEM_IN_CATALOG,
    ITEM_LISTED_AT,
    QUERY_IN_QUERIES,
    QUERY_TS,
)
from vsearch.validation.tables import type_list

if TYPE_CHECKING:
    import great_expectations as gx

    from vsearch.validation.report import DropStats


@dataclass(frozen=True)
class CheckSpec:
    """A named check: its severity and the one-line reason it exists (shown in Data Docs)."""

    name: str
    critical: bool
    why: str


def _spec(name: str, critical: bool, why: str) -> tuple[str, CheckSpec]:
    return name, CheckSpec(name, critical, why)


CHECKS: dict[str, CheckSpec] = dict(
    [
        _spec("table_readable", True, "A drop needs all three tables, readable."),
        _spec("column_exists", True, "A required contract column is missing: nothing can use it."),
        _spec("column_type", True, "Stored values must be castable to the contract type."),
        _spec("contract_cast", True, "The column did not cast to the contract type."),
        _spec("min_rows", True, "Fewer rows than min_rows_*: most likely a truncated extract."),
        _spec(
            "volume_vs_history",
            True,
            "Impression volume far from the median of recent drops of the same kind: a partial "
            "or doubled extract. A real change is accepted with `vsearch ingest DROP "
            '--accept-volume` or `"accept_volume_jump": true` in the drop\'s drop.json.',
        ),
        _spec("ctr_in_range", True, "Click-through rate out of bounds: click logging broke."),
        _spec("key_not_null", True, "Rows without an id cannot be referenced or deduplicated."),
        _spec("key_unique", True, "Duplicated ids: replayed events or a bad join upstream."),
        _spec(
            "required_not_null",
            True,
            "Links, position and clicked drive mining: a null one means a broken logger.",
        ),
        _spec("not_in_future", True, "Timestamps after now + clock_skew_s: a wrong clock."),
        _spec("position_range", True, "Positions are 0-based ranks below max_position."),
        _spec("unique_query_position", True, "Two events at one rank of one list: replayed."),
        _spec("item_id_in_catalog", True, "An impression of an item the catalog does not list."),
        _spec("query_id_in_queries", True, "An impression of a query the drop does not log."),
        _spec(
            "click_order_only_if_clicked",
            True,
            "click_order is set exactly on clicked rows (null when not clicked).",
        ),
        _spec("click_order_starts_at_0", True, "The first click of each query has order 0."),
        _spec(
            "click_order_contiguous",
            True,
            "Click orders of a query are 0..n-1 without gaps or repeats: lost or doubled clicks.",
        ),
        _spec(
            "image_path_safe",
            True,
            "Image path absolute, with '..', or a symlink leading out of the drop folder: "
            "refused, the file is never read.",
        ),
        _spec(
            "image_file_ok",
            True,
            "Image file missing or not decodable: an incomplete copy.",
        ),
        _spec("value_not_null", False, "A required value is missing: the row is unusable."),
        _spec(
            "image_size_ok",
            False,
            "Image too large (bytes/pixels, checked before decoding) or too small to use.",
        ),
        _spec("price_positive", False, "A listing price must be > 0."),
        _spec("quality_in_unit_range", False, "Quality is a score in [0, 1]."),
        _spec("sales_non_negative", False, "Units sold cannot be negative."),
        _spec("stock_non_negative", False, "Units in stock cannot be negative."),
        _spec("title_not_blank", False, "A listing needs a title."),
        _spec("dwell_non_negative", False, "Dwell time cannot be negative."),
        _spec("shown_after_listing", False, "An item cannot be shown before it was listed."),
        _spec("shown_after_query", False, "A result cannot be shown before its query was made."),
    ]
)

KEY_COLUMNS: dict[str, str] = {c.name: c.key or "" for c in (CATALOG, QUERIES, IMPRESSIONS)}
# Impression columns whose null breaks the checks and mining that follow (critical).
REQUIRED_LINKS: dict[str, tuple[str, ...]] = {
    IMPRESSIONS.name: ("query_id", "item_id", "position", "clicked")
}
TIME_COLUMNS: dict[str, str] = {
    CATALOG.name: "listed_at",
    QUERIES.name: "ts",
    IMPRESSIONS.name: "ts",
}


_DESCRIBED_KWARGS = ("column", "column_list", "column_A", "column_B", "min_value", "max_value")


def describe(check: str, kwargs: dict[str, Any]) -> str:
    """The line Data Docs shows for an expectation: check name, severity, why, and its bounds.

    Why our own text: GX renders either its template *or* the description, and only ours can
    say which check this is and whether its failure stops the drop or quarantines rows.
    """
    spec = CHECKS[check]
    args = ", ".join(f"{k}={kwargs[k]}" for k in _DESCRIBED_KWARGS if kwargs.get(k) is not None)
    severity = "critical" if spec.critical else "quarantine"
    return f"{check} [{severity}] ({args}): {spec.why}"


def _expect(cls: type, check: str, **kwargs: Any) -> Any:
    """A GX expectation tagged with the check's name, severity and reason."""
    spec = CHECKS[check]
    return cls(
        **kwargs,
        severity="critical" if spec.critical else "warning",
        meta={"check": check},
        notes=spec.why,
        description=describe(check, kwargs),
    )


@dataclass(frozen=True)
class ContentBounds:
    """Drop-dependent limits the content suites compare against.

    Attributes:
        latest_allowed: timestamps after this are "in the future" (now + clock skew).
        min_rows: per table.
        volume: (min, max) impression rows from the history median, or ``None`` without history.
        ctr: (min, max) share of clicked impressions.
        max_position: positions must be below this.
    """

    latest_allowed: datetime
    min_rows: dict[str, int]
    volume: tuple[float, float] | None
    ctr: tuple[float, float]
    max_position: int

    @classmethod
    def build(
        cls,
        settings: ValidationSettings,
        history: Sequence[DropStats],
        now: datetime,
        *,
        delta: bool = False,
        accept_volume: bool = False,
    ) -> ContentBounds:
        """Bounds for a drop validated at ``now`` after the drops in ``history``.

        Only the ``history_window`` most recent drops count, so volume follows a growing shop.
        The caller passes drops of the same kind only (deltas are compared with deltas). A
        delta's catalog holds only what changed, so it may be small or empty (no
        ``min_rows_catalog``). ``accept_volume`` lifts the volume bound for a drop a person
        checked (a real jump in traffic).
        """
        recent = sorted(history, key=lambda s: s.validated_at)[-settings.history_window :]
        counts = [s.rows.get(IMPRESSIONS.name, 0) for s in recent]
        median = statistics.median(counts) if counts else 0
        volume = (
            (settings.volume_ratio_min * median, settings.volume_ratio_max * median)
            if median > 0 and not accept_volume
            else None
        )
        return cls(
            latest_allowed=now + timedelta(seconds=settings.clock_skew_s),
            min_rows={
                CATALOG.name: 0 if delta else settings.min_rows_catalog,
                QUERIES.name: settings.min_rows_queries,
                IMPRESSIONS.name: settings.min_rows_impressions,
            },
            volume=volume,
            ctr=(settings.ctr_min, settings.ctr_max),
            max_position=settings.max_position,
        )


def schema_suite(contract: TableContract, present: Sequence[str]) -> gx.ExpectationSuite:
    """Columns exist and hold values castable to the contract types (runs on raw values)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"{contract.name}.schema")
    for col in contract.columns:
        if col.required:
            suite.add_expectation(
                _expect(gxe.ExpectColumnToExist, "column_exists", column=col.name)
            )
        if col.name in present:
            suite.add_expectation(
                _expect(
                    gxe.ExpectColumnValuesToBeInTypeList,
                    "column_type",
                    column=col.name,
                    type_list=type_list(col.type),
                )
            )
    return suite


def _common(contract: TableContract, present: Sequence[str], bounds: ContentBounds) -> list[Any]:
    """Row count, keys, non-null values and timestamps: what every table shares."""
    import great_expectations.expectations as gxe

    name = contract.name
    key = KEY_COLUMNS[name]
    links = REQUIRED_LINKS.get(name, ())
    exps: list[Any] = [
        _expect(gxe.ExpectTableRowCountToBeBetween, "min_rows", min_value=bounds.min_rows[name]),
        _expect(gxe.ExpectColumnValuesToNotBeNull, "key_not_null", column=key),
        _expect(gxe.ExpectColumnValuesToBeUnique, "key_unique", column=key),
    ]
    for col in contract.columns:
        if col.nullable or col.name == key or col.name not in present:
            continue
        check = "required_not_null" if col.name in links else "value_not_null"
        exps.append(_expect(gxe.ExpectColumnValuesToNotBeNull, check, column=col.name))
    exps.append(
        _expect(
            gxe.ExpectColumnValuesToBeBetween,
            "not_in_future",
            column=TIME_COLUMNS[name],
            max_value=bounds.latest_allowed,
        )
    )
    return exps


def _image_checks() -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        _expect(gxe.ExpectColumnValuesToBeNull, "image_path_safe", column=IMAGE_PATH_ERROR),
        _expect(gxe.ExpectColumnValuesToBeNull, "image_file_ok", column=IMAGE_FILE_ERROR),
        _expect(gxe.ExpectColumnValuesToBeNull, "image_size_ok", column=IMAGE_SIZE_ERROR),
    ]


def _catalog_checks(present: Sequence[str]) -> list[Any]:
    import great_expectations.expectations as gxe

    stock = []
    if "stock" in present:  # optional column (null = unknown stock)
        stock.append(
            _expect(
                gxe.ExpectColumnValuesToBeBetween, "stock_non_negative", column="stock", min_value=0
            )
        )
    return [
        *stock,
        _expect(
            gxe.ExpectColumnValuesToBeBetween,
            "price_positive",
            column="price",
            min_value=0,
            strict_min=True,
        ),
        _expect(
            gxe.ExpectColumnValuesToBeBetween,
            "quality_in_unit_range",
            column="quality",
            min_value=0,
            max_value=1,
        ),
        _expect(
            gxe.ExpectColumnValuesToBeBetween, "sales_non_negative", column="sales", min_value=0
        ),
        _expect(
            gxe.ExpectColumnValuesToNotMatchRegex, "title_not_blank", column="title", regex=r"^\s*$"
        ),
        *_image_checks(),
    ]


def _flag(check: str, column: str) -> Any:
    """Assert a derived per-row boolean column is True everywhere."""
    import great_expectations.expectations as gxe

    return _expect(gxe.ExpectColumnValuesToBeInSet, check, column=column, value_set=[True])


def _impression_checks(present: Sequence[str], bounds: ContentBounds) -> list[Any]:
    import great_expectations.expectations as gxe

    exps: list[Any] = []
    if bounds.volume is not None:
        lo, hi = bounds.volume
        exps.append(
            _expect(
                gxe.ExpectTableRowCountToBeBetween,
                "volume_vs_history",
                min_value=int(lo),
                max_value=int(hi),
            )
        )
    exps += [
        _expect(
            gxe.ExpectColumnMeanToBeBetween,
            "ctr_in_range",
            column="clicked",
            min_value=bounds.ctr[0],
            max_value=bounds.ctr[1],
        ),
        _expect(
            gxe.ExpectColumnValuesToBeBetween,
            "position_range",
            column="position",
            min_value=0,
            max_value=bounds.max_position - 1,
        ),
        _expect(
            gxe.ExpectCompoundColumnsToBeUnique,
            "unique_query_position",
            column_list=["query_id", "position"],
        ),
        _flag("item_id_in_catalog", ITEM_IN_CATALOG),
        _flag("query_id_in_queries", QUERY_IN_QUERIES),
        _flag("click_order_only_if_clicked", CLICK_ORDER_ONLY_IF_CLICKED),
        _flag("click_order_starts_at_0", CLICK_ORDER_STARTS_AT_0),
        _flag("click_order_contiguous", CLICK_ORDER_CONTIGUOUS),
    ]
    for check, other in (("shown_after_listing", ITEM_LISTED_AT), ("shown_after_query", QUERY_TS)):
        exps.append(
            _expect(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB,
                check,
                column_A="ts",
                column_B=other,
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            )
        )
    if "dwell_ms" in present:
        exps.append(
            _expect(
                gxe.ExpectColumnValuesToBeBetween,
                "dwell_non_negative",
                column="dwell_ms",
                min_value=0,
            )
        )
    return exps


def content_suite(
    contract: TableContract, present: Sequence[str], bounds: ContentBounds
) -> gx.ExpectationSuite:
    """Values, keys, relations, click consistency, images and drop-level rates of one table.

    Args:
        contract: which table.
        present: contract columns present in the drop (optional ones may be absent).
        bounds: the drop-dependent limits.
    """
    import great_expectations as gx

    extra: list[Any]
    if contract.name == CATALOG.name:
        extra = _catalog_checks(present)
    elif contract.name == QUERIES.name:
        extra = _image_checks()
    else:
        extra = _impression_checks(present, bounds)
    suite = gx.ExpectationSuite(name=f"{contract.name}.content")
    for exp in [*_common(contract, present, bounds), *extra]:
        suite.add_expectation(exp)
    return suite
