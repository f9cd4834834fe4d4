"""``vsearch validate DROP_DIR``: validate a drop, write report and Data Docs, exit 2 if it fails.

Why exit 2 and not 1: a failed validation is bad *input* (docs/cli.md#exit-codes); scripts branch
on it, and the message names the failing expectations so a person knows what to fix.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vsearch.cli_support import emit, get_settings, run_guarded


def validate_command(
    drop_dir: Path = typer.Argument(..., help="drop folder in the contract format"),
    report: Path | None = typer.Option(
        None, "--report", help="JSON report path [default: <validation_reports_dir>/<drop>.json]"
    ),
    docs: bool = typer.Option(
        True, "--docs/--no-docs", help="build GX Data Docs (also needs validation.data_docs)"
    ),
    accept_volume: bool = typer.Option(
        False, "--accept-volume", help="no volume-vs-history bound (a real jump you checked)"
    ),
    standalone: bool = typer.Option(
        False,
        "--standalone",
        help="check the drop on its own: no volume history, no known catalog (what a DVC "
        "stage needs: its result may depend on nothing but its deps)",
    ),
    json_out: bool = typer.Option(False, "--json", help="print the JSON report on stdout"),
) -> None:
    """Validate a drop with Great Expectations; exit 2 naming the failing checks if it fails.

    A dry run: compared with the drops ingested so far (``--standalone``: with none), it never
    becomes their history."""

    def body() -> None:
        from vsearch.validation.report import summarize
        from vsearch.validation.stage import require_success, run_validation

        settings = get_settings()
        ing = settings.ingest
        reports_dir = Path.cwd() / ing.validation_reports_dir
        # a dry run: compared with the ingested drops (the ledger), never added to them
        result, report_path = run_validation(
            drop_dir,
            settings.validation,
            reports_dir,
            ledger=None if standalone else Path.cwd() / ing.ledger_file,
            known_catalog_dir=None if standalone else Path.cwd() / ing.window_dir,
            accept_volume=accept_volume,
            report_path=report,
            docs=docs,
        )
        if json_out:
            emit(result.to_dict(), as_json=True)
        elif result.success:  # on failure the error message carries the summary
            typer.echo(f"{summarize(result)}\nreport: {report_path}")
        require_success(result, report_path, "fix the drop and validate again")

    run_guarded(body)
