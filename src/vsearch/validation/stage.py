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
    ledger: Path | None = None,
    known_catalog_dir: Path | None = None,
    accept_volume: bool = False,
    report_path: Path | None = None,
    docs: bool = True,
) -> tuple[Any, Path]:
    """Validate ``drop`` against the contract and the drops ingested before it; write the report.

    History comes from the drop ledger (drops *ingested* into this project, of the same kind as
    this one, this drop's own record excluded), never from the report folder: a dry run writes
    a report but must not move the next ingest's volume bounds. Data Docs go to
    ``<reports_dir>/<drop_id>_docs/`` so each drop keeps its own site.

    Args:
        drop: the drop folder.
        settings: the ``validation`` section.
        reports_dir: where the JSON report (and Data Docs) go.
        ledger: the drop ledger (``ingest.ledger_file``); ``None``: no history.
        known_catalog_dir: a drop-format folder whose catalog lists what the project already
            has (the merged window view): a delta's impressions may show those listings.
        accept_volume: lift the volume-vs-history bound (a jump a person checked).
        report_path: the JSON report (default ``<reports_dir>/<drop_id>.json``).
        docs: build Data Docs (also needs ``validation.data_docs``).

    Returns:
        The ``ValidationResult`` and the path of its JSON report.

    Raises:
        BadInput: the drop folder is missing, its id is unusable or its drop.json is broken.
    """
    from vsearch.contracts import CATALOG, DELTA, drop_kind, has_table, read_ledger, read_table
    from vsearch.validation import validate_drop, write_report
    from vsearch.validation.report import history_from_ledger
    from vsearch.validation.tables import check_drop_id, drop_id_of, drop_manifest_of

    if not drop.is_dir():
        raise BadInput(f"drop folder not found: {drop.resolve()}")
    drop_id = check_drop_id(drop_id_of(drop))
    kind = drop_kind(drop_manifest_of(drop))
    history = history_from_ledger(read_ledger(ledger), kind=kind, exclude=drop_id) if ledger else []
    known = None
    if kind == DELTA and known_catalog_dir is not None and has_table(known_catalog_dir, CATALOG):
        known = read_table(known_catalog_dir, CATALOG)
    result = validate_drop(
        drop.resolve(),
        settings,
        history=history,
        docs_dir=reports_dir / f"{drop_id}_docs" if docs and settings.data_docs else None,
        known_catalog=known,
        accept_volume=accept_volume,
    )
    report_path = report_path or reports_dir / f"{drop_id}.json"
    write_report(result, report_path)
    return result, report_path


def require_success(result: Any, report_path: Path, consequence: str) -> None:
    """Raise ``GateFailed`` naming every critical failure if validation did not pass."""
    from vsearch.validation import summarize

    if not result.success:
        hint = ""
        if any(f.check == "volume_vs_history" for f in result.critical_failures):
            hint = (
                "\nthe impression volume is far from recent drops of this kind; if that is real "
                "(a new market, a sale), accept it: `vsearch ingest DROP --accept-volume`, or "
                'add "accept_volume_jump": true to the drop\'s drop.json (an incoming drop: '
                "then move it back from rejected/ into the incoming folder)"
            )
        raise GateFailed(
            f"drop {result.drop_id!r} failed validation; {consequence}.\n"
            f"{summarize(result)}\nreport: {report_path}{hint}"
        )
