"""``vsearch window``: build the merged view of the selected window of drops (a DVC stage).

Paths are arguments (``dvc.yaml`` is their only home); which drops come from
``ingest.current_file``, which the ingest's select step writes.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vsearch.cli_support import emit, get_settings, run_guarded


def window_command(
    selection: Path = typer.Option(
        ..., "--selection", help="the pointer file naming the window (ingest.current_file)"
    ),
    raw: Path = typer.Option(..., "--raw", help="folder of the ingested drops (ingest.raw_dir)"),
    out: Path = typer.Option(..., "--out", help="folder of the merged view (drop format)"),
    truth: Path | None = typer.Option(
        None, "--truth", help="folder of the drops' ground truth (ingest.truth_dir; demo only)"
    ),
    truth_out: Path | None = typer.Option(
        None, "--truth-out", help="the window's merged truth (or only the no-truth marker)"
    ),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Merge the window's drops: latest listing row wins, removed listings gone, logs joined."""

    def body() -> None:
        from vsearch.data.window import build_view, merge_truth, read_selection
        from vsearch.errors import BadInput

        get_settings()  # a broken params.yaml fails here, like every command
        if (truth is None) != (truth_out is None):
            raise BadInput("--truth and --truth-out go together")
        drops = read_selection(selection)
        manifest = build_view(drops, raw, out)
        if truth is not None and truth_out is not None:
            manifest["truth"] = merge_truth(drops, truth, truth_out)
        emit(manifest, json_out)

    run_guarded(body)
