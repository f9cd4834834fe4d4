"""Validation outcome, its JSON report, a terminal summary and the history of earlier drops.

Why a JSON report per drop: it is what the pipeline links, what a person reads to fix a drop
(every failing expectation with example rows), and what the *next* drop is compared with: its
``stats`` hold the row counts and click-through rate that the volume and CTR gates use.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vsearch.fsio import atomic_write_text

log = logging.getLogger(__name__)

REPORT_VERSION = 1


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of ``value``: timestamps as ISO strings, NaN/NaT as null, numpy unboxed."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return str(value)
    if isinstance(value, bool | int | str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


@dataclass
class Failure:
    """One failing check.

    Attributes:
        table: ``catalog``, ``queries`` or ``impressions``.
        check: stable check name (see the table in :mod:`vsearch.validation.suites`).
        expectation_type: the GX expectation (or ``no batch`` check) that failed.
        columns: the column(s) it looked at.
        critical: a critical failure fails the drop; otherwise the rows were quarantined.
        unexpected_count: offending rows, when the check is row-level.
        observed: the observed value of a table-level check (row count, mean, dtype...).
        message: a human sentence (exception text for a check that could not run).
        examples: up to ``max_examples`` offending rows, with their ``_row`` number.
    """

    table: str
    check: str
    expectation_type: str
    columns: list[str]
    critical: bool
    unexpected_count: int | None = None
    observed: Any = None
    message: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``table.column check (expectation)``: how people and logs name this failure."""
        where = f"{self.table}.{','.join(self.columns)}" if self.columns else self.table
        return f"{where} {self.check} ({self.expectation_type})"


@dataclass
class DropStats:
    """Figures of one drop that later drops are compared with (volume, CTR) and people read.

    Attributes:
        drop_id: the drop.
        validated_at: ISO-8601 UTC time of the validation.
        success: whether the drop passed (only passing drops count as history by default).
        kind: ``snapshot`` or ``delta`` (history compares drops of one kind).
        rows: rows per table as delivered.
        clean_rows: rows per table after quarantine (empty if the drop was unreadable).
        quarantined_rows: rows per table moved to quarantine.
        clicks: clicked impressions.
        ctr: clicks / impressions (``None`` without impressions).
        images: counts: ``referenced`` distinct paths, ``file_errors``, ``size_errors``.
        checks_run: expectations evaluated (GX plus the "no batch" checks).
        checks_failed: of which failed.
        critical_failed: of which critical.
    """

    drop_id: str
    validated_at: str
    success: bool
    kind: str = "snapshot"
    rows: dict[str, int] = field(default_factory=dict)
    clean_rows: dict[str, int] = field(default_factory=dict)
    quarantined_rows: dict[str, int] = field(default_factory=dict)
    clicks: int = 0
    ctr: float | None = None
    images: dict[str, int] = field(default_factory=dict)
    checks_run: int = 0
    checks_failed: int = 0
    critical_failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DropStats:
        """Inverse of :meth:`to_dict`; unknown keys (a newer report) are ignored."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class ValidationResult:
    """Everything :func:`vsearch.validation.validate_drop` found.

    Attributes:
        drop_id: from ``drop.json`` or the folder name.
        success: no critical failure.
        failures: every failing check, critical first.
        stats: figures for people and for the next drop's history.
        clean: contract-cast tables with quarantined rows removed; ``None`` when the drop is not
            structurally readable (a table missing, a column missing or of the wrong type).
        quarantined: removed rows per table (contract columns plus ``reason``).
        docs_path: the Data Docs ``index.html`` when built.
    """

    drop_id: str
    success: bool
    failures: list[Failure]
    stats: DropStats
    clean: dict[str, pd.DataFrame] | None = None
    quarantined: dict[str, pd.DataFrame] = field(default_factory=dict)
    docs_path: Path | None = None

    @property
    def critical_failures(self) -> list[Failure]:
        return [f for f in self.failures if f.critical]

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (without the data frames; quarantine as counts per reason)."""
        reasons: dict[str, dict[str, int]] = {}
        for table, frame in self.quarantined.items():
            if len(frame):
                counts = frame["reason"].str.split("; ").explode().value_counts()
                reasons[table] = {str(k): int(v) for k, v in counts.items()}
        return jsonable(
            {
                "report_version": REPORT_VERSION,
                "drop_id": self.drop_id,
                "success": self.success,
                "critical_failures": [f.label for f in self.critical_failures],
                "failures": [asdict(f) for f in self.failures],
                "quarantine_reasons": reasons,
                "stats": self.stats.to_dict(),
                "docs_path": str(self.docs_path) if self.docs_path else None,
            }
        )


def write_report(result: ValidationResult, path: Path) -> Path:
    """Write the JSON report atomically (parent folders created)."""
    return atomic_write_text(path, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")


def load_history(
    report_dir: Path, *, exclude: str | None = None, only_successful: bool = True
) -> list[DropStats]:
    """Stats of earlier drops from their JSON reports in ``report_dir``, oldest first.

    A folder of reports holds dry runs too, so the ingest gate does not use it as history
    (:func:`history_from_ledger` does that); this reads reports for people and tools.

    Files that are not validation reports (other JSON, unreadable files) are skipped, so the
    folder may hold other things. A missing folder means no history.

    Args:
        report_dir: where :func:`write_report` put the reports.
        exclude: a drop id to leave out (re-validating a drop must not compare it with itself).
        only_successful: failed drops are no baseline for what a normal drop looks like.
    """
    report_dir = Path(report_dir)
    if not report_dir.is_dir():
        return []
    history = []
    for path in sorted(report_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            stats = DropStats.from_dict(data["stats"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.debug("not a validation report, skipped: %s (%s)", path, exc)
            continue
        if stats.drop_id == exclude or (only_successful and not stats.success):
            continue
        history.append(stats)
    return sorted(history, key=lambda s: s.validated_at)


def history_from_ledger(
    records: list[dict[str, Any]], *, kind: str, exclude: str | None = None
) -> list[DropStats]:
    """Validation history: the stats of drops *ingested* into this project, of one kind.

    Why the ledger and not the report folder: ``vsearch validate`` writes a report for every dry
    run too (a sample, a drop that is then not ingested), and a dry run must never move the
    volume bounds of the next real drop. Deltas are compared with deltas and snapshots with
    snapshots: a day of clicks is no measure for a full export.

    Args:
        records: the drop ledger (:func:`vsearch.contracts.read_ledger`), oldest first.
        kind: the kind of the drop being validated.
        exclude: a drop id to leave out (re-validating a drop must not compare it with itself).
    """
    history = []
    for rec in records:
        stats = rec.get("stats")
        if rec.get("drop_id") == exclude or not isinstance(stats, dict):
            continue
        if (rec.get("kind") or "snapshot") != kind:
            continue
        try:
            history.append(DropStats.from_dict({**stats, "kind": kind}))
        except TypeError as exc:
            log.debug("ledger record of %s has no usable stats: %s", rec.get("drop_id"), exc)
    return sorted(history, key=lambda s: s.validated_at)


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def summarize(result: ValidationResult) -> str:
    """A short human summary: verdict, figures, then one line per failing check."""
    s = result.stats
    verdict = "PASSED" if result.success else "FAILED"
    n_crit = len(result.critical_failures)
    n_warn = len(result.failures) - n_crit
    ctr = f"{s.ctr:.3f}" if s.ctr is not None else "n/a"
    rows = ", ".join(f"{t} {n}" for t, n in s.rows.items()) or "none readable"
    lines = [
        f"drop {result.drop_id}: {verdict} ({n_crit} critical, {n_warn} quarantine; "
        f"{s.checks_run} checks)",
        f"rows: {rows}; clicks {s.clicks}; CTR {ctr}",
    ]
    if result.failures:
        header = ("severity", "table", "check", "column", "bad", "expectation / observed")
        widths = (10, 12, 28, 28, 6, 60)
        table = [header]
        for f in result.failures:
            detail = f.expectation_type
            if f.observed is not None:
                detail += f" observed={f.observed}"
            elif f.message:
                detail += f": {f.message}"
            table.append(
                (
                    "CRITICAL" if f.critical else "quarantine",
                    f.table,
                    f.check,
                    ",".join(f.columns),
                    "" if f.unexpected_count is None else f.unexpected_count,
                    detail,
                )
            )
        for row in table:
            lines.append(
                "  ".join(_cell(v, w).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            )
    if any(s.quarantined_rows.values()):
        q = ", ".join(f"{t} {n}" for t, n in s.quarantined_rows.items() if n)
        lines.append(f"quarantined rows: {q}")
    if result.docs_path:
        lines.append(f"data docs: {result.docs_path}")
    return "\n".join(lines)
