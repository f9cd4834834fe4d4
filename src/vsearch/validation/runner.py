"""``validate_drop``: run the GX suites over a drop, collect failures, split clean from quarantine.

Why two phases: the *schema* suites run on values exactly as stored; only if every table is
structurally sound (readable, all required columns, castable types) are the tables cast to the
contract and the *content* suites run. Deeper checks on a table whose ``position`` is text would
only produce noise, so a structural failure is reported on its own, cleanly, and ``clean`` is
``None``.

Why an ephemeral GX context per call: it costs milliseconds (importing GX is what costs seconds,
once per process), holds no state between drops, and writes nothing unless Data Docs are asked
for. The drop folder itself is only read. A missing drop folder or a malformed ``drop.json``
raises :class:`vsearch.errors.BadInput`; a missing or unreadable *table* file is reported as the
critical check ``table_readable`` so that a report still says which tables were fine.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from vsearch.contracts import (
    DELTA,
    DROP_TABLES,
    IMPRESSIONS,
    REMOVED,
    ContractError,
    TableContract,
    drop_kind,
    has_table,
    read_raw_arrow,
)
from vsearch.settings import ValidationSettings
from vsearch.validation.derived import DERIVED_COLUMNS, content_frames
from vsearch.validation.images import ImageCheck, check_images
from vsearch.validation.quarantine import RowReasons, apply_quarantine, rows_of
from vsearch.validation.report import DropStats, Failure, ValidationResult, jsonable
from vsearch.validation.suites import CHECKS, ContentBounds, content_suite, schema_suite
from vsearch.validation.tables import (
    CastError,
    cast_table,
    drop_id_of,
    drop_manifest_of,
    schema_frame,
    uncastable,
)

log = logging.getLogger(__name__)

_INT_COLUMNS = {c.name for t in DROP_TABLES for c in t.columns if pa.types.is_integer(c.type)}
NO_BATCH = "no batch"  # expectation_type of the checks that run before GX has a table
DOCS_SITE = "vsearch"


class _GxRun:
    """One ephemeral GX context for one drop: a pandas data source, one asset per table."""

    def __init__(self, drop_id: str, docs_dir: Path | None, now: datetime) -> None:
        gx_log = logging.getLogger("great_expectations")
        if gx_log.level == logging.NOTSET:  # GX logs hundreds of INFO lines per import/run
            gx_log.setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        sites = {}
        if docs_dir is not None:
            sites[DOCS_SITE] = {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(Path(docs_dir).resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            analytics_enabled=False,
            data_docs_sites=sites,
        )
        self._gx = gx
        self.docs_dir = docs_dir
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        self.source = self.context.data_sources.add_pandas(name=drop_id)
        self.run_id = RunIdentifier(run_name=drop_id, run_time=now)
        self._batches: dict[str, Any] = {}

    def validate(self, table: str, suite: Any, frame: pd.DataFrame, examples: int) -> list[Any]:
        """Run ``suite`` on ``frame``; returns GX's per-expectation results."""
        if table not in self._batches:
            asset = self.source.add_dataframe_asset(name=table)
            self._batches[table] = asset.add_batch_definition_whole_dataframe(name="drop")
        suite = self.context.suites.add(suite)
        definition = self.context.validation_definitions.add(
            self._gx.ValidationDefinition(name=suite.name, data=self._batches[table], suite=suite)
        )
        result = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE", "partial_unexpected_count": examples},
            run_id=self.run_id,
        )
        return list(result.results)

    def build_docs(self) -> Path | None:
        """Render Data Docs for this run's results; returns ``index.html`` (``None`` if off)."""
        if self.docs_dir is None:
            return None
        self.context.build_data_docs(site_names=[DOCS_SITE])
        return Path(self.docs_dir).resolve() / "index.html"


def _columns_of(kwargs: dict[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    return [kwargs[k] for k in ("column_A", "column_B") if k in kwargs]


def _exception_message(info: Any) -> str:
    """GX reports exceptions either flat or keyed by metric: find the first message."""
    if not isinstance(info, dict):
        return ""
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "check raised an exception")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "check raised an exception")
    return ""


def _examples(
    frame: pd.DataFrame, rows: list[int], columns: list[str], limit: int
) -> list[dict[str, Any]]:
    """Example rows: the table's own columns plus the checked (maybe derived) ones."""
    shown = [c for c in frame.columns if c in columns or c not in DERIVED_COLUMNS]
    out = []
    for row in rows[:limit]:
        if row in frame.index:
            record = {"_row": row, **frame.loc[row, shown].to_dict()}
            for key, value in record.items():  # pandas holds nullable ints as floats
                if key in _INT_COLUMNS and isinstance(value, float) and value.is_integer():
                    record[key] = int(value)
            out.append(jsonable(record))
    return out


def _collect(
    table: str,
    results: list[Any],
    frame: pd.DataFrame,
    limit: int,
    row_reasons: RowReasons,
) -> list[Failure]:
    """Failures from GX results; rows of quarantine-severity failures go into ``row_reasons``."""
    failures = []
    for res in results:
        if res.success:
            continue
        cfg = res.expectation_config
        check = (cfg.meta or {}).get("check", cfg.type)
        critical = CHECKS[check].critical if check in CHECKS else True
        kwargs = dict(cfg.kwargs)
        columns = _columns_of(kwargs)
        detail = res.result or {}
        rows = rows_of(detail.get("unexpected_index_list") or [])
        message = _exception_message(res.exception_info)
        if check == "column_exists":
            message = message or f"column {columns[0]!r} is missing from {table}"
        if not critical:
            if rows:
                for row in rows:
                    row_reasons[table][row].append(check)
            else:  # a row-level check that names no rows cannot quarantine: fail the drop
                critical = True
                message = message or "quarantine check failed without naming rows"
        failures.append(
            Failure(
                table=table,
                check=check,
                expectation_type=cfg.type,
                columns=columns,
                critical=critical,
                unexpected_count=detail.get("unexpected_count"),
                observed=jsonable(detail.get("observed_value")),
                message=message,
                examples=_examples(frame, rows, columns, limit),
            )
        )
    return failures


def _stats(
    drop_id: str,
    now: datetime,
    tables: dict[str, pa.Table],
    typed: dict[str, pd.DataFrame],
    images: dict[str, ImageCheck],
    failures: list[Failure],
    checks_run: int,
    clean: dict[str, pd.DataFrame] | None,
    quarantined: dict[str, pd.DataFrame],
) -> DropStats:
    imp = typed.get(IMPRESSIONS.name)
    clicks = int(imp["clicked"].eq(True).sum()) if imp is not None else 0
    n_imp = len(imp) if imp is not None else 0
    critical = sum(f.critical for f in failures)
    return DropStats(
        drop_id=drop_id,
        validated_at=now.isoformat(),
        success=critical == 0,
        rows={name: t.num_rows for name, t in tables.items()},
        clean_rows={name: len(df) for name, df in (clean or {}).items()},
        quarantined_rows={name: len(df) for name, df in quarantined.items()},
        clicks=clicks,
        ctr=clicks / n_imp if n_imp else None,
        images={
            "referenced": len(images),
            "file_errors": sum(c.file_error is not None for c in images.values()),
            "size_errors": sum(c.size_error is not None for c in images.values()),
        },
        checks_run=checks_run,
        checks_failed=len(failures),
        critical_failed=critical,
    )


def _removed_table(drop: Path, kind: str, limit: int) -> tuple[list[Failure], pd.DataFrame | None]:
    """The optional ``removed`` table of a delta: readable, typed, ids present and unique.

    A snapshot carries the whole catalog, so a ``removed`` table there is a critical mistake of
    the exporter (which listing is gone is then simply: not in the snapshot). Returns the
    failures and, for a delta, the cast table (empty when the drop has none).
    """
    present = has_table(drop, REMOVED)
    if kind != DELTA:
        if not present:
            return [], None
        return [
            Failure(
                table=REMOVED.name,
                check="table_readable",
                expectation_type=NO_BATCH,
                columns=[],
                critical=True,
                message="a snapshot drop must not carry a removed table: set "
                '"kind": "delta" in drop.json, or leave removed listings out of the catalog',
            )
        ], None
    if not present:
        return [], REMOVED.empty()
    try:
        frame = cast_table(read_raw_arrow(drop, REMOVED), REMOVED)
        missing = [c for c in REMOVED.required_names if c not in frame.columns]
        if missing:
            raise ContractError(f"removed: missing required column(s) {missing}")
    except ContractError as exc:
        return [_no_batch_failure(REMOVED, "contract_cast", exc)], None
    failures = []
    ids = frame["item_id"]
    for check, bad in (("key_not_null", ids.isna()), ("key_unique", ids.duplicated(keep=False))):
        if bad.any():
            failures.append(
                Failure(
                    table=REMOVED.name,
                    check=check,
                    expectation_type=NO_BATCH,
                    columns=["item_id"],
                    critical=True,
                    unexpected_count=int(bad.sum()),
                    examples=jsonable(frame[bad].head(limit).to_dict("records")),
                )
            )
    return failures, frame


def _explain_type(
    failure: Failure, contract: TableContract, table: pa.Table, frame: pd.DataFrame, limit: int
) -> None:
    """Name the stored type and show the values that cannot be read at all first."""
    name = failure.columns[0]
    target = contract.column(name).type
    bad = uncastable(frame[name], target)
    failure.message = (
        f"stored as {table.schema.field(name).type}, contract says {target}; "
        f"{int(bad.sum())} value(s) unreadable as {target} even from text"
    )
    rows = [int(r) for r in bad[bad].index]
    if rows:
        failure.examples = _examples(frame, rows, failure.columns, limit)


def _no_batch_failure(contract: TableContract, check: str, exc: Exception) -> Failure:
    return Failure(
        table=contract.name,
        check=check,
        expectation_type=NO_BATCH,
        columns=[exc.column] if isinstance(exc, CastError) else [],
        critical=CHECKS[check].critical,
        message=str(exc),
    )


def validate_drop(
    drop: Path,
    settings: ValidationSettings,
    *,
    history: Sequence[DropStats] = (),
    docs_dir: Path | None = None,
    now: datetime | None = None,
    known_catalog: pd.DataFrame | None = None,
    accept_volume: bool = False,
) -> ValidationResult:
    """Validate a drop folder against the contracts and the history of earlier drops.

    Reads the drop, writes nothing (except Data Docs into ``docs_dir`` when given).

    Args:
        drop: folder in the drop format (see :mod:`vsearch.contracts`).
        settings: the ``validation`` section of params.yaml.
        history: stats of earlier (passing) drops, e.g. from
            :func:`vsearch.validation.report.load_history`; bounds this drop's volume.
        docs_dir: build GX Data Docs here (``index.html``); ``None`` for no docs.
        now: the reference time for "not in the future" (default: the current UTC time).
        known_catalog: for a delta drop, the listings the project already has (the current
            window's catalog): its impressions may show them, though its own catalog holds
            only what changed.
        accept_volume: no volume-vs-history bound (a jump a person checked); also set by
            ``"accept_volume_jump": true`` in the drop's ``drop.json``.

    Returns:
        The :class:`ValidationResult`; ``success`` is False when a critical check failed.

    Raises:
        BadInput: the folder does not exist or its ``drop.json`` is malformed.
    """
    drop = Path(drop)
    drop_id = drop_id_of(drop)
    manifest = drop_manifest_of(drop)
    kind = drop_kind(manifest)
    accept_volume = accept_volume or manifest.get("accept_volume_jump") is True
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    limit = settings.max_examples
    run = _GxRun(drop_id, docs_dir, now)
    failures: list[Failure] = []
    checks_run = 0
    row_reasons: RowReasons = defaultdict(lambda: defaultdict(list))

    tables: dict[str, pa.Table] = {}
    for contract in DROP_TABLES:
        checks_run += 1
        try:
            tables[contract.name] = read_raw_arrow(drop, contract)
        except ContractError as exc:
            failures.append(_no_batch_failure(contract, "table_readable", exc))

    for contract in DROP_TABLES:
        if contract.name not in tables:
            continue
        frame = schema_frame(tables[contract.name], contract)
        results = run.validate(
            contract.name, schema_suite(contract, list(frame.columns)), frame, limit
        )
        checks_run += len(results)
        found = _collect(contract.name, results, frame, limit, row_reasons)
        for failure in found:
            if failure.check == "column_type":
                _explain_type(failure, contract, tables[contract.name], frame, limit)
        failures += found

    typed: dict[str, pd.DataFrame] = {}
    if not any(f.critical for f in failures):
        for contract in DROP_TABLES:
            checks_run += 1
            try:
                typed[contract.name] = cast_table(tables[contract.name], contract)
            except ContractError as exc:
                failures.append(_no_batch_failure(contract, "contract_cast", exc))

    images: dict[str, ImageCheck] = {}
    clean: dict[str, pd.DataFrame] | None = None
    quarantined: dict[str, pd.DataFrame] = {}
    if len(typed) == len(DROP_TABLES):
        paths = [p for name in ("catalog", "queries") for p in typed[name]["image"].tolist()]
        images = check_images(drop, paths, settings)
        known = known_catalog if kind == DELTA else None
        frames = content_frames(typed, images, known_catalog=known)
        bounds = ContentBounds.build(
            settings, history, now, delta=kind == DELTA, accept_volume=accept_volume
        )
        for contract in DROP_TABLES:
            present = [c for c in contract.names if c in typed[contract.name].columns]
            frame = frames[contract.name]
            results = run.validate(
                contract.name, content_suite(contract, present, bounds), frame, limit
            )
            checks_run += len(results)
            failures += _collect(contract.name, results, frame, limit, row_reasons)
        clean, quarantined = apply_quarantine(typed, row_reasons)

    removed_failures, removed = _removed_table(drop, kind, limit)
    failures += removed_failures
    checks_run += 1 if kind == DELTA or has_table(drop, REMOVED) else 0
    if clean is not None and removed is not None:
        clean[REMOVED.name] = removed
    failures.sort(key=lambda f: not f.critical)  # stable: critical first, suite order kept
    docs_path = run.build_docs()
    stats = _stats(drop_id, now, tables, typed, images, failures, checks_run, clean, quarantined)
    stats.kind = kind
    log.info(
        "validated drop %s: %s, %d failing checks",
        drop_id,
        "passed" if stats.success else "FAILED",
        len(failures),
    )
    return ValidationResult(
        drop_id=drop_id,
        success=stats.success,
        failures=failures,
        stats=stats,
        clean=clean,
        quarantined=quarantined,
        docs_path=docs_path,
    )
