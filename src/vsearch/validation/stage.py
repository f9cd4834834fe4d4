"""The validation stage: validate a drop folder, write its report (and Data Docs), judge it.

Why apart from :mod:`vsearch.data.ingest`: ``vsearch validate`` and the ingest gate run the same
stage, and validation must not depend on the ingest that depends on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsearch.errors import BadInput, GateFailed
from vsearch.settings import ValidationSettings


def run_validation(
    drop: Path,
    settings: ValidationSettings,
    reports_dir: Path,
    *,
    report_path: Path | None = None,
    docs: bool = True,
) -> tuple[Any, Path]:
    """Validate ``drop`` against the contract and earlier drops; write the JSON report.

    History comes from the reports in ``reports_dir`` (this drop's own excluded). Data Docs go
    to ``<reports_dir>/<drop_id>_docs/`` so each drop keeps its own site.

    Returns:
        The ``ValidationResult`` and the path of its JSON report.

    Raises:
        BadInput: the drop folder is missing or its id is unusable.
    """
    from vsearch.validation import load_history, validate_drop, write_report
    from vsearch.validation.tables import check_drop_id, drop_id_of

    if not drop.is_dir():
        raise BadInput(f"drop folder not found: {drop.resolve()}")
    drop_id = check_drop_id(drop_id_of(drop))
    result = validate_drop(
        drop.resolve(),
        settings,
        history=load_history(reports_dir, exclude=drop_id),
        docs_dir=reports_dir / f"{drop_id}_docs" if docs and settings.data_docs else None,
    )
    report_path = report_path or reports_dir / f"{drop_id}.json"
    write_report(result, report_path)
    return result, report_path


def require_success(result: Any, report_path: Path, consequence: str) -> None:
    """Raise ``GateFailed`` naming every critical failure if validation did not pass."""
    from vsearch.validation import summarize

    if not result.success:
        raise GateFailed(
            f"drop {result.drop_id!r} failed validation; {consequence}.\n"
            f"{summarize(result)}\nreport: {report_path}"
        )
