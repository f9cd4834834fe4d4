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
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Merge the window's drops: latest listing row wins, removed listings gone, logs joined."""

    def body() -> None:
        from vsearch.data.window import build_view, read_selection

        get_settings()  # a broken params.yaml fails here, like every command
        manifest = build_view(read_selection(selection), raw, out)
        emit(manifest, json_out)

    run_guarded(body)
